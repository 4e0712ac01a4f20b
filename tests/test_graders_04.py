"""Notebook 04 graders reject the classic mistakes and accept right answers."""

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

from posenc.attention import attention_reference
from posenc.grading import run_cases

NB = SOLUTIONS / "04_rope.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
apply_rope = SOL["apply_rope"]
rope_frequencies = SOL["rope_frequencies"]
rope_attention_reference = SOL["rope_attention"]


def freq_arange_dim(dim, base=10000.0):
    """exponent over arange(dim)"""
    return 1.0 / base ** (torch.arange(dim).float() / dim)


def freq_i_over_d(dim, base=10000.0):
    """exponent i/d with d/2 values"""
    return 1.0 / base ** (torch.arange(dim // 2).float() / dim)


def freq_positive(dim, base=10000.0):
    """base^(+2i/d)"""
    return base ** (torch.arange(0, dim, 2).float() / dim)


def freq_float64(dim, base=10000.0):
    """returns float64"""
    return 1.0 / base ** (torch.arange(0, dim, 2).double() / dim)


def freq_ignores_base(dim, base=10000.0):
    """hard-codes 10000"""
    return 1.0 / 10000.0 ** (torch.arange(0, dim, 2).float() / dim)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (freq_arange_dim, "one per pair"),
        (freq_i_over_d, "i/d"),
        (freq_positive, "positive exponent"),
        (freq_float64, "dtype"),
        (freq_ignores_base, "base argument"),
    ],
)
def test_frequency_grader_rejects(wrong, hint):
    assert_rejected("rope_frequencies", wrong, hint)


def _rope(
    x,
    positions,
    base=10000.0,
    *,
    layout="half",
    sign=1,
    swap=False,
    shift=0,
    exponent_step=2,
    angle_dtype=torch.float32,
    first_half_only=False,
):
    """A learner-style RoPE with switches for each classic mistake."""
    dim = x.shape[-1]
    inv = 1.0 / base ** (torch.arange(0, dim, exponent_step)[: dim // 2].float() / dim)
    ang = ((positions + shift).to(angle_dtype)[:, None] * inv.to(angle_dtype)).float()
    cos, sin = (ang.sin(), ang.cos()) if swap else (ang.cos(), ang.sin())
    xf = x.float()
    if first_half_only:
        half = dim // 2
        out = xf.clone()
        rope = apply_rope if layout == "half" else SOL["apply_rope_interleaved"]
        out[..., :half] = rope(xf[..., :half].contiguous(), positions, base=base)
        return out.to(x.dtype)
    if layout == "half":
        x1, x2 = xf[..., : dim // 2], xf[..., dim // 2 :]
        rot = torch.cat([-x2, x1], -1) if sign > 0 else torch.cat([x2, -x1], -1)
        out = xf * torch.cat([cos, cos], -1) + rot * torch.cat([sin, sin], -1)
    else:
        xe, xo = xf[..., 0::2], xf[..., 1::2]
        s = sin if sign > 0 else -sin
        out = torch.stack([xe * cos - xo * s, xe * s + xo * cos], -1).flatten(-2)
    return out.to(x.dtype)


def _named(doc, **switches):
    def fn(x, positions, base=10000.0):
        return _rope(x, positions, base, **switches)

    fn.__doc__ = doc
    return fn


HALF_MISTAKES = [
    (_named("interleaved where half is asked", layout="interleaved"), "interleaved layout"),
    (_named("rotate_half sign flipped", sign=-1), "sign flipped"),
    (_named("cos and sin swapped", swap=True), "swapped"),
    (_named("positions off by one", shift=1), "off by one"),
    (_named("exponent over arange(dim)", exponent_step=1), "i/d"),
    (_named("rotates only the first half", first_half_only=True), "first half"),
    (_named("angles in bfloat16", angle_dtype=torch.bfloat16), "half precision"),
    (_named("angles in float16", angle_dtype=torch.float16), "float16"),
]


@pytest.mark.parametrize("wrong, hint", HALF_MISTAKES)
def test_apply_rope_grader_rejects(wrong, hint):
    assert_rejected("apply_rope", wrong, hint)


INTERLEAVED_MISTAKES = [
    (_named("half where interleaved is asked", layout="half"), "half layout"),
    (_named("sign flipped", layout="interleaved", sign=-1), "sign flipped"),
    (_named("cos/sin swapped", layout="interleaved", swap=True), "swapped"),
    (_named("positions off by one", layout="interleaved", shift=1), "off by one"),
    (_named("bf16 angles", layout="interleaved", angle_dtype=torch.bfloat16), "half precision"),
]


@pytest.mark.parametrize("wrong, hint", INTERLEAVED_MISTAKES)
def test_apply_rope_interleaved_grader_rejects(wrong, hint):
    assert_rejected("apply_rope_interleaved", wrong, hint)


def returns_float32_for_bf16(x, positions, base=10000.0):
    """forgets to cast back to x.dtype"""
    return apply_rope(x.float(), positions, base=base)


def test_dtype_of_result_is_checked():
    assert_rejected("apply_rope", returns_float32_for_bf16, "cast the result")


def _attn(
    q,
    k,
    v,
    positions,
    *,
    rotate_v=False,
    rotate_q=True,
    rotate_k=True,
    causal=True,
    rotate_output=False,
):
    rq = apply_rope(q, positions) if rotate_q else q
    rk = apply_rope(k, positions) if rotate_k else k
    rv = apply_rope(v, positions) if rotate_v else v
    out = attention_reference(rq, rk, rv, causal=causal)
    return (
        apply_rope(attention_reference(q, k, v, causal=True), positions) if (rotate_output) else out
    )


def _a(doc, **switches):
    def fn(q, k, v, positions):
        return _attn(q, k, v, positions, **switches)

    fn.__doc__ = doc
    return fn


def absolute_position_leak(q, k, v, positions):
    """adds the raw position to the scores' input"""
    return rope_attention_reference(q + positions[:, None].float() * 1e-2, k, v, positions)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_a("v rotated too", rotate_v=True), "v was rotated"),
        (_a("k not rotated", rotate_k=False), "only q"),
        (_a("q not rotated", rotate_q=False), "only k"),
        (_a("no causal mask", causal=False), "causal mask"),
        (_a("rotates the output", rotate_output=True), "output"),
        (absolute_position_leak, None),
    ],
)
def test_rope_attention_grader_rejects(wrong, hint):
    assert_rejected("rope_attention", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    for name in (
        "rope_frequencies",
        "apply_rope",
        "apply_rope_interleaved",
        "rope_attention",
        "rope_decode_step",
    ):
        assert_accepted(name, ns[name])


# --- precision traps: right formulas, too narrow a dtype ----------------------------------


def rope_angles_in_x_dtype(x, positions, base=10000.0):
    """HF-style, but positions and inv_freq cast to x's dtype before the product"""
    d = x.shape[-1]
    inv = (1.0 / base ** (torch.arange(0, d, 2).float() / d)).to(x.dtype)
    freqs = positions.to(x.dtype)[:, None] * inv[None, :]
    emb = torch.cat([freqs, freqs], -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()


def rope_float16_positions(x, positions, base=10000.0):
    """float32 frequencies, but positions stored as float16 first"""
    d = x.shape[-1]
    inv = 1.0 / base ** (torch.arange(0, d, 2).float() / d)
    freqs = positions.half().float()[:, None] * inv[None, :]
    emb = torch.cat([freqs, freqs], -1)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return (x * emb.cos() + torch.cat([-x2, x1], -1) * emb.sin()).to(x.dtype)


def rope_meta_bf16_angles(x, positions, base=10000.0):
    """Meta-style complex rotation with the outer product taken in bfloat16"""
    d = x.shape[-1]
    freqs = 1.0 / base ** (torch.arange(0, d, 2).float() / d)
    angles = torch.outer(positions.bfloat16(), freqs.bfloat16()).float()
    cis = torch.polar(torch.ones_like(angles), angles)
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(z * cis).flatten(-2).to(x.dtype)


@pytest.mark.parametrize(
    "name, wrong, hint",
    [
        ("apply_rope", rope_angles_in_x_dtype, "bfloat16"),
        ("apply_rope", rope_float16_positions, "float16"),
        ("apply_rope_interleaved", rope_meta_bf16_angles, "bfloat16"),
        ("drill_apply_rope", rope_angles_in_x_dtype, "bfloat16"),
    ],
)
def test_precision_traps_fail_with_a_precision_hint(name, wrong, hint):
    """Each fails the case that bites: positions in the thousands (float32 or bfloat16 x)."""
    assert_rejected(name, wrong, hint)


def test_a_precision_failure_names_measured_and_allowed_error():
    result = run_cases("apply_rope", rope_float16_positions)
    assert "max error" in result.hint and "allowed" in result.hint
    assert "likely cause" in result.hint


# --- rope_decode_step: the classic mistakes of a RoPE KV cache ----------------------------


def _decoder(*, q_at=0, k_at=0, store_rotated=True, rotate_cache_at=None, rotate_output=False):
    """A learner-style decoding step with switches for each classic mistake: q and k rotated at
    ``position + q_at`` / ``position + k_at`` (None: not rotated; "zero": at position 0),
    the cache rotated again at use (``rotate_cache_at``: "own" positions or the "query"'s)."""

    def at(position, shift):
        return torch.tensor([0 if shift == "zero" else position + shift])

    def step(q, k, v, cache_k, cache_v, position):
        new_k = k if k_at is None or not store_rotated else apply_rope(k, at(position, k_at))
        cache_k, cache_v = torch.cat([cache_k, new_k], -2), torch.cat([cache_v, v], -2)
        keys = cache_k
        if rotate_cache_at == "own":
            keys = apply_rope(cache_k, torch.arange(position + 1))
        elif rotate_cache_at == "query":
            keys = apply_rope(cache_k, torch.full((position + 1,), position))
        query = q if rotate_output else apply_rope(q, at(position, q_at))
        out = attention_reference(query, keys, cache_v)
        return (apply_rope(out, at(position, 0)) if rotate_output else out), cache_k, cache_v

    return step


def _d(doc, **switches):
    fn = _decoder(**switches)
    fn.__doc__ = doc
    return fn


def decode_rotates_cache_in_place(q, k, v, cache_k, cache_v, position):
    """rotates the stored cache again at every step and writes it back (angles pile up)"""
    cache_k = torch.cat([cache_k, apply_rope(k, torch.tensor([position]))], -2)
    cache_k = apply_rope(cache_k, torch.arange(position + 1))
    cache_v = torch.cat([cache_v, v], -2)
    out = attention_reference(apply_rope(q, torch.tensor([position])), cache_k, cache_v)
    return out, cache_k, cache_v


def decode_returns_output_only(q, k, v, cache_k, cache_v, position):
    """forgets to return the cache"""
    return _decoder()(q, k, v, cache_k, cache_v, position)[0]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_d("cached keys rotated again at use", rotate_cache_at="own"), "rotated again"),
        (_d("every token at position 0", q_at="zero", k_at="zero"), "position 0"),
        (_d("new key stored unrotated", store_rotated=False), "without its rotation"),
        (
            _d("whole cache at the query's position", store_rotated=False, rotate_cache_at="query"),
            "query's position",
        ),
        (_d("rotation after attention", store_rotated=False, rotate_output=True), "output"),
        (_d("query one position late", q_at=1), "one position after"),
        (_d("q and k one position late", q_at=1, k_at=1), "one position too far"),
        (decode_rotates_cache_in_place, None),
        (decode_returns_output_only, "return the tuple"),
    ],
)
def test_rope_decode_step_grader_rejects(wrong, hint):
    assert_rejected("rope_decode_step", wrong, hint)
