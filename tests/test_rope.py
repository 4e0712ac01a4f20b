"""RoPE against independent formulations (rotation matrices, complex numbers, HF's formula),
and its invariants: relative scores, norms, layouts, checkpoints, KV cache, precision."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posenc.attention import MultiHeadAttention, attention_reference, attention_sdpa
from posenc.rope import (
    RotaryEmbedding,
    apply_rope,
    apply_rope_complex,
    base_for_slow_fraction,
    half_to_interleaved_permutation,
    qk_weight_permutation,
    rope_cached,
    rope_cached_,
    rope_cos_sin,
    rope_decay_bound,
    rope_decode_step,
    rope_frequencies,
    rope_scores_by_distance,
    rope_wavelengths,
    rotate_half,
    rotate_interleaved,
    slow_pair_count,
)


def rotation_matrix(m: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """R_Θ,m of the RoFormer paper (eq. 15): block-diagonal 2×2 rotations, interleaved pairs."""
    r = torch.zeros(dim, dim, dtype=torch.float64)
    for i in range(dim // 2):
        a = m * base ** (-2 * i / dim)
        r[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor(
            [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], dtype=torch.float64
        )
    return r


def hf_style(x, positions, base=10000.0):
    """The Hugging Face Llama formula, re-typed: cat(freqs, freqs), rotate_half."""
    dim = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    x1, x2 = x[..., : dim // 2], x[..., dim // 2 :]
    return x * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()


def complex_style(x, positions, base=10000.0):
    """Meta's reference, re-typed: pairs as complex numbers times e^{i m θ}."""
    dim = x.shape[-1]
    theta = 1.0 / (base ** (torch.arange(0, dim, 2).double() / dim))
    rot = torch.polar(
        torch.ones(len(positions), dim // 2, dtype=torch.float64),
        positions.double()[:, None] * theta,
    )
    z = torch.view_as_complex(x.double().reshape(*x.shape[:-1], dim // 2, 2).contiguous())
    return torch.view_as_real(z * rot).reshape(x.shape)


def test_frequencies():
    theta = rope_frequencies(8)
    assert theta.dtype == torch.float32
    torch.testing.assert_close(theta, torch.tensor([1.0, 0.1, 0.01, 0.001]))


def test_interleaved_equals_rotation_matrices():
    x = torch.randn(6, 8, dtype=torch.float64)
    ours = apply_rope(x.float(), torch.arange(6), layout="interleaved").double()
    for m in range(6):
        torch.testing.assert_close(ours[m], rotation_matrix(m, 8) @ x[m], atol=1e-5, rtol=0)


def test_half_matches_hugging_face_formula_and_interleaved_matches_complex():
    x, pos = torch.randn(2, 4, 11, 32), torch.arange(100, 111)
    torch.testing.assert_close(apply_rope(x, pos), hf_style(x, pos), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        apply_rope(x, pos, layout="interleaved").double(),
        complex_style(x, pos),
        atol=1e-4,
        rtol=1e-5,
    )
    torch.testing.assert_close(
        apply_rope_complex(x, pos), apply_rope(x, pos, layout="interleaved"), atol=1e-4, rtol=1e-5
    )


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(0, 5000),
    n=st.integers(0, 5000),
    shift=st.integers(0, 3000),
    half_dim=st.integers(1, 32),
    layout=st.sampled_from(["half", "interleaved"]),
)
def test_scores_depend_only_on_m_minus_n(m, n, shift, half_dim, layout):
    g = torch.Generator().manual_seed(m * 7 + n)
    q, k = torch.randn(1, 2 * half_dim, generator=g), torch.randn(1, 2 * half_dim, generator=g)

    def score(a, b):
        return (
            apply_rope(q, torch.tensor([a]), layout=layout)
            @ apply_rope(k, torch.tensor([b]), layout=layout).T
        ).item()

    assert math.isclose(score(m, n), score(m + shift, n + shift), abs_tol=2e-3 * half_dim)


def test_norms_preserved_and_position_zero_is_identity():
    x = torch.randn(3, 7, 16)
    out = apply_rope(x, torch.arange(7) * 1000)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(apply_rope(x[:, :1], torch.tensor([0])), x[:, :1])


def test_layouts_are_a_permutation_and_the_weight_permutation_converts_a_checkpoint():
    perm = half_to_interleaved_permutation(8)
    x, pos = torch.randn(5, 8), torch.arange(5)
    torch.testing.assert_close(
        apply_rope(x[..., perm], pos), apply_rope(x, pos, layout="interleaved")[..., perm]
    )
    heads, head_dim, d_model = 3, 8, 12
    w_inter = torch.randn(heads * head_dim, d_model)  # a q projection trained "interleaved"
    w_half = w_inter[qk_weight_permutation(heads, head_dim)]
    h = torch.randn(5, d_model)

    def per_head(w, layout):
        q = (h @ w.T).view(5, heads, head_dim).transpose(0, 1)  # (heads, seq, head_dim)
        return apply_rope(q, pos, layout=layout)

    q_i, q_h = per_head(w_inter, "interleaved"), per_head(w_half, "half")
    # The attention scores of the converted checkpoint are unchanged.
    torch.testing.assert_close(
        q_i @ q_i.transpose(-1, -2), q_h @ q_h.transpose(-1, -2), atol=1e-4, rtol=1e-4
    )


def test_partial_rotary_leaves_the_tail_alone():
    x = torch.randn(4, 10)
    out = apply_rope(x, torch.arange(4), rotary_dim=6)
    torch.testing.assert_close(out[:, 6:], x[:, 6:])
    torch.testing.assert_close(out[:, :6], apply_rope(x[:, :6], torch.arange(4)))


def test_batched_positions_broadcast_over_heads():
    x = torch.randn(2, 3, 5, 8)
    positions = torch.stack([torch.arange(5), torch.arange(5) + 40])  # (batch, seq)
    out = apply_rope(x, positions)
    torch.testing.assert_close(out[1], apply_rope(x[1], torch.arange(5) + 40))


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"x": torch.randn(3, 5)}, "rotary_dim"),
        ({"x": torch.randn(3, 4), "positions": torch.arange(4)}, "seq"),
        ({"x": torch.randn(3, 4), "layout": "gptj"}, "layout"),
        ({"x": torch.randn(3, 4), "positions": torch.arange(3.0)}, "integer"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, word):
    args = {"x": None, "positions": torch.arange(3)} | kwargs
    with pytest.raises(ValueError, match=word):
        apply_rope(args.pop("x"), args.pop("positions"), **args)


def test_bf16_angles_collapse_but_ours_do_not():
    positions = torch.arange(4096)
    bf16_angles = positions.to(torch.bfloat16) * rope_frequencies(64)[1].to(torch.bfloat16)
    assert bf16_angles.unique().numel() < 1000  # thousands of positions, a few hundred angles
    cos, sin = rope_cos_sin(positions, 64, dtype=torch.bfloat16)
    exact = torch.cos(positions.double() * rope_frequencies(64)[1].double())
    assert (cos[:, 1].double() - exact).abs().max() < 1e-2  # only the final rounding to bf16


def test_kv_cache_scores_equal_full_recompute():
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 9, 16).unbind(0)
    pos = torch.arange(9)
    rq, rk = apply_rope(q, pos), apply_rope(k, pos)
    full = attention_reference(rq, rk, v, causal=True)
    # Decode the last token: its query at position 8, against the 9 cached rotated keys.
    step = attention_sdpa(apply_rope(q[..., 8:, :], pos[8:]), rk, v, causal=True)
    torch.testing.assert_close(step, full[..., 8:, :], atol=1e-5, rtol=1e-5)


def test_scheme_inside_multi_head_attention_is_shift_invariant():
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, RotaryEmbedding(8))
    x = torch.randn(2, 6, 32)
    torch.testing.assert_close(
        mha(x, torch.arange(6)), mha(x, torch.arange(6) + 1000), atol=1e-4, rtol=1e-4
    )


# --- bad input: each class is refused with an error naming the argument ---------------------


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda: apply_rope(torch.arange(12).view(3, 4), torch.arange(3)), TypeError, "floating"),
        (lambda: apply_rope([[1.0, 2.0]], torch.arange(1)), TypeError, "tensor"),
        (lambda: apply_rope(torch.randn(3, 4), [0, 1, 2]), TypeError, "positions"),
        (lambda: apply_rope(torch.randn(3, 4), torch.ones(3, dtype=torch.bool)), ValueError, "int"),
        (lambda: apply_rope(torch.randn(3, 4), torch.arange(3), rotary_dim=3), ValueError, "even"),
        (
            lambda: apply_rope(torch.randn(3, 4), torch.arange(3), rotary_dim=6),
            ValueError,
            "x.s dim",
        ),
        (
            lambda: apply_rope(torch.randn(3, 4), torch.arange(3), rotary_dim=2.5),
            ValueError,
            "whole",
        ),
        (lambda: apply_rope(torch.randn(3, 4), torch.arange(3), base=1.0), ValueError, "base"),
        (lambda: apply_rope(torch.randn(3, 4), torch.arange(3), base="1e4"), TypeError, "base"),
        (lambda: apply_rope(torch.randn(3, 4), torch.arange(3), base=math.inf), ValueError, "base"),
        (
            lambda: apply_rope(torch.randn(2, 2, 3, 4), torch.zeros(3, 3, dtype=torch.long)),
            ValueError,
            "broadcast",
        ),
        (
            lambda: apply_rope(torch.randn(3, 4), torch.tensor([0, 1, 2**60])),
            ValueError,
            "2\\*\\*53",
        ),
        (
            lambda: apply_rope(torch.randn(3, 4), torch.arange(3), attention_factor=0.0),
            ValueError,
            "attention_factor",
        ),
        (
            lambda: apply_rope(torch.randn(3, 4), torch.arange(3), frequencies=torch.ones(3)),
            ValueError,
            "shape \\(2,\\)",
        ),
        (
            lambda: apply_rope(
                torch.randn(3, 4), torch.arange(3), frequencies=torch.ones(2).long()
            ),
            TypeError,
            "floating",
        ),
        (
            lambda: apply_rope(torch.randn(3, 4), torch.arange(3), frequencies=-torch.ones(2)),
            ValueError,
            ">= 0",
        ),
        (
            lambda: apply_rope(torch.randn(3, 4), torch.arange(3), out=torch.empty(3, 4).double()),
            ValueError,
            "out",
        ),
        (lambda: rope_frequencies(2.5), ValueError, "dim"),
        (lambda: rotate_half(torch.randn(3, 5)), ValueError, "even"),
        (lambda: rotate_interleaved(torch.arange(4)), TypeError, "floating"),
        (
            lambda: rope_cached(torch.arange(8).view(2, 4), *rope_cos_sin(torch.arange(2), 4)),
            TypeError,
            "floating",
        ),
        (lambda: rope_frequencies(True), TypeError, "dim"),
        (lambda: rope_frequencies(0), ValueError, "dim"),
        (lambda: rope_cos_sin(torch.arange(3), 8, dtype=torch.int32), TypeError, "dtype"),
        (lambda: half_to_interleaved_permutation(7), ValueError, "dim"),
        (lambda: qk_weight_permutation(0, 8), ValueError, "num_heads"),
        (lambda: rope_decay_bound(torch.ones(2, 2), 8), ValueError, "distances"),
        (lambda: RotaryEmbedding(16, layout="gptj"), ValueError, "layout"),
        (lambda: RotaryEmbedding(8, rotary_dim=10), ValueError, "rotary_dim"),
        (lambda: RotaryEmbedding(8, frequencies=[1.0] * 4), TypeError, "frequencies"),
    ],
)
def test_bad_input_raises_and_names_the_argument(call, error, word):
    with pytest.raises(error, match=word):
        call()


def test_rotary_embedding_refuses_a_head_dim_it_was_not_built_for():
    q = torch.randn(1, 2, 5, 8)
    with pytest.raises(ValueError, match="head_dim = 16"):
        RotaryEmbedding(16).rotate(q, q, torch.arange(5))
    with pytest.raises(ValueError, match="cover"):
        RotaryEmbedding(8).rotate(q, q, torch.arange(3))


def test_float64_input_is_rotated_in_float64():
    x = torch.randn(6, 8, dtype=torch.float64)
    out = apply_rope(x, torch.arange(6) * 1000, layout="interleaved")
    assert out.dtype == torch.float64
    for m in range(6):
        exact = rotation_matrix(1000 * m, 8) @ x[m]
        torch.testing.assert_close(out[m], exact, atol=1e-12, rtol=0)  # float32 would be ~1e-4
    assert apply_rope(x.to(torch.bfloat16), torch.arange(6)).dtype == torch.bfloat16


def test_large_positions_use_float64_frequencies_as_the_docstring_promises():
    """Past 2**24 the angles are float64 and so is θ: cos(m·θ) matches Python's double math."""
    positions = torch.tensor([2**25, 2**25 + 1, 3 * 10**9])
    cos, sin = rope_cos_sin(positions, 8)
    for row, m in enumerate(positions.tolist()):
        for i in range(4):
            angle = m * 10000.0 ** (-2 * i / 8)  # the exact θ_i, rounded once, in double
            assert abs(cos[row, i].item() - math.cos(angle)) < 1e-5
            assert abs(sin[row, i].item() - math.sin(angle)) < 1e-5


def test_complex_path_with_per_batch_positions_inserts_the_head_axis():
    """batch == heads is the case that used to broadcast silently along the wrong axis."""
    x = torch.randn(2, 2, 5, 8)
    positions = torch.stack([torch.arange(5), torch.arange(5) + 40])  # (batch, seq)
    out = apply_rope_complex(x, positions)
    for b in range(2):
        expected = complex_style(x[b], positions[b]).float()  # (heads, seq, d)
        torch.testing.assert_close(out[b], expected, atol=1e-4, rtol=1e-5)


# --- the out= / in-place forms -----------------------------------------------------------


@pytest.mark.parametrize("layout", ["half", "interleaved"])
@pytest.mark.parametrize("rotary_dim", [16, 10])
def test_out_and_in_place_equal_the_plain_path(layout, rotary_dim):
    x, pos = torch.randn(2, 3, 7, 16), torch.arange(7) + 3
    expected = apply_rope(x, pos, layout=layout, rotary_dim=rotary_dim)
    buffer = torch.full_like(x, math.nan)
    result = apply_rope(x, pos, layout=layout, rotary_dim=rotary_dim, out=buffer)
    assert result is buffer
    torch.testing.assert_close(buffer, expected, atol=0, rtol=0)
    y = x.clone()
    apply_rope(y, pos, layout=layout, rotary_dim=rotary_dim, out=y)
    torch.testing.assert_close(y, expected, atol=0, rtol=0)


def test_rope_cached_in_place_and_low_precision_out():
    x, pos = torch.randn(4, 9, 32), torch.arange(9)
    cos, sin = rope_cos_sin(pos, 32)
    expected = rope_cached(x, cos, sin)
    torch.testing.assert_close(expected, hf_style(x, pos), atol=1e-5, rtol=1e-5)
    y = x.clone()
    assert rope_cached_(y, cos, sin) is y
    torch.testing.assert_close(y, expected, atol=0, rtol=0)
    xb = x.bfloat16()
    out = torch.empty_like(xb)
    rope_cached(xb, cos, sin, out=out)
    torch.testing.assert_close(out, rope_cached(xb, cos, sin), atol=0, rtol=0)
    with pytest.raises(ValueError, match="d/2"):
        rope_cached(x, cos[:, :8], sin[:, :8])


def test_slow_pairs_counts_wavelengths_beyond_the_length():
    # dim 8, base 10 000: θ = 1, 0.1, 0.01, 0.001 → λ = 2π, 62.8, 628, 6283: two beyond 64
    assert slow_pair_count(64, 8, 10000.0) == 2
    assert slow_pair_count(62, 8, 10000.0) == 3
    assert slow_pair_count(63, 8, 10000.0) == 2  # 62.83 < 63
    assert slow_pair_count(4096, 128, 10000.0) == 18  # Llama 2


def test_base_for_slow_fraction_puts_the_boundary_pair_at_the_length():
    base = base_for_slow_fraction(64, 8, 0.25)  # pair i = 3 should have λ = 64
    assert rope_wavelengths(8, base)[3].item() == pytest.approx(64.0, rel=1e-12)
    with pytest.raises(ValueError, match="fraction"):
        base_for_slow_fraction(64, 8, 1.0)
    with pytest.raises(ValueError, match="length"):
        slow_pair_count(0, 8)


# --- decoding with a KV cache, scores by distance -----------------------------------------


def test_decode_steps_equal_one_causal_pass():
    """Token by token from an empty cache == causal attention over the whole sequence."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 3, 10, 16, dtype=torch.float64).unbind(0)
    cache_k = cache_v = torch.empty(2, 3, 0, 16, dtype=torch.float64)
    outs = []
    for t in range(10):
        one = slice(t, t + 1)
        out, cache_k, cache_v = rope_decode_step(
            q[..., one, :], k[..., one, :], v[..., one, :], cache_k, cache_v, t
        )
        outs.append(out)
    pos = torch.arange(10)
    full = attention_reference(apply_rope(q, pos), apply_rope(k, pos), v, causal=True)
    torch.testing.assert_close(torch.cat(outs, -2), full, rtol=0, atol=1e-12)
    torch.testing.assert_close(cache_k, apply_rope(k, pos), rtol=0, atol=1e-12)


def test_decode_step_rejects_a_cache_of_the_wrong_length():
    x = torch.randn(1, 4)
    with pytest.raises(ValueError, match="cache must hold the 3 positions"):
        rope_decode_step(x, x, x, torch.randn(2, 4), torch.randn(2, 4), 3)
    with pytest.raises(ValueError, match="one new token"):
        rope_decode_step(torch.randn(2, 4), x, x, torch.randn(3, 4), torch.randn(3, 4), 3)


def test_scores_by_distance_equal_scores_at_positions():
    """(R_r q)·k == (R_m q)·(R_n k) for every m − n = r, here with n = 40."""
    torch.manual_seed(1)
    q, k = torch.randn(5, 32, dtype=torch.float64), torch.randn(5, 32, dtype=torch.float64)
    distances = torch.tensor([0, 1, 7, 90])
    got = rope_scores_by_distance(q, k, distances, base=500.0)  # (5, 4)
    for j, r in enumerate(distances.tolist()):
        m, n = torch.tensor([40 + r]), torch.tensor([40])
        want = apply_rope(q[:, None], m, base=500.0) * apply_rope(k[:, None], n, base=500.0)
        torch.testing.assert_close(got[:, j], want.sum(-1)[:, 0], rtol=0, atol=1e-10)
