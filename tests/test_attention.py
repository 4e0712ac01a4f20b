"""The attention reference: formula, causal mask, and permutation equivariance."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posenc.alibi import ALiBi
from posenc.attention import (
    MultiHeadAttention,
    attention_reference,
    attention_sdpa,
    causal_mask,
    permutation_equivariance_gap,
    self_attention,
    visible_keys,
)
from posenc.relative_bias import T5RelativeBias, relative_positions


def test_matches_torch_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 8, generator=g) for _ in range(3))
    for causal in (False, True):
        ours = attention_reference(q, k, v, causal=causal)
        theirs = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_one_token_attends_to_itself():
    x = torch.randn(1, 4)
    w = torch.randn(4, 4)
    torch.testing.assert_close(self_attention(x, w, w, w), x @ w)


def test_causal_mask_aligned_to_the_end():
    mask = causal_mask(2, 4)
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True] * 3]


@settings(max_examples=25, deadline=None)
@given(seq=st.integers(2, 12), d=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_unmasked_attention_is_permutation_equivariant(seq, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(seq, d, generator=g, dtype=torch.float64)
    w_q, w_k, w_v = (torch.randn(d, 3, generator=g, dtype=torch.float64) for _ in range(3))
    perm = torch.randperm(seq, generator=g)
    gap = permutation_equivariance_gap(lambda t: self_attention(t, w_q, w_k, w_v), x, perm)
    assert gap < 1e-10


def test_causal_attention_is_not_permutation_equivariant():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g)
    w_q, w_k, w_v = (torch.randn(4, 4, generator=g) for _ in range(3))
    reverse = torch.arange(5, -1, -1)
    attn = lambda t: self_attention(t, w_q, w_k, w_v, causal=True)  # noqa: E731
    assert permutation_equivariance_gap(attn, x, reverse) > 0.1


def test_scores_are_scaled_by_sqrt_dk():
    q = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    k = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    v = torch.tensor([[1.0], [0.0]])
    expected = 1 / (1 + math.exp(-4 / 2))  # softmax of (4/√4, 0)
    assert math.isclose(attention_reference(q, k, v).item(), expected, rel_tol=1e-6)


# --- offsets, padding, and what SDPA receives ----------------------------------------------


def test_causal_mask_with_an_offset_is_a_static_cache():
    # 10 tokens already in a 16-slot cache, the 11th and 12th arrive: slots 10 and 11.
    mask = causal_mask(2, 16, offset=10)
    assert mask[0].tolist() == [True] * 11 + [False] * 5
    assert mask[1].tolist() == [True] * 12 + [False] * 4
    torch.testing.assert_close(causal_mask(3, 7, offset=4), causal_mask(3, 7))  # = the end


def test_causal_mask_and_relative_positions_share_one_grid():
    for q_len, k_len, offset in [(4, 4, None), (2, 9, None), (1, 64, 10), (3, 8, 0)]:
        grid = relative_positions(q_len, k_len, offset=offset)
        assert torch.equal(causal_mask(q_len, k_len, offset=offset), grid <= 0)


def test_visible_keys_combines_causality_and_padding():
    pad = torch.tensor([[True, True, True], [False, True, True]])
    mask = visible_keys(3, causal=True, key_padding_mask=pad)
    assert mask.shape == (2, 3, 3)
    assert mask[1].tolist() == [[False, False, False], [False, True, False], [False, True, True]]
    assert visible_keys(3, causal=False) is None


def _masked_reference(q, k, v, allowed):
    """Attention written out with an explicit boolean mask; rows with no key give 0."""
    scores = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(~allowed, -math.inf)
    return torch.softmax(scores, -1).nan_to_num(0.0) @ v


def test_sdpa_with_offset_and_padding_matches_the_written_out_formula():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(2, 3, 2, 8, generator=g)
    k, v = (torch.randn(2, 3, 12, 8, generator=g) for _ in range(2))
    pad = torch.ones(2, 12, dtype=torch.bool)
    pad[1, :3] = False  # left padding in the second sequence
    pad[0, 5] = False  # a hole in the first
    ours = attention_sdpa(q, k, v, offset=6, key_padding_mask=pad)
    allowed = (torch.arange(12) <= torch.arange(6, 8)[:, None]) & pad[:, None, None, :]
    torch.testing.assert_close(ours, _masked_reference(q, k, v, allowed), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "make_scheme", [lambda: None, lambda: ALiBi(4), lambda: T5RelativeBias(4, zero_init=False)]
)
def test_left_padding_changes_nothing_for_the_real_tokens(make_scheme):
    """A sequence padded on the left, with positions counting real tokens only and the padding
    masked, gives the same outputs at its real tokens as the sequence alone."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, make_scheme())
    x = torch.randn(1, 5, 16)
    padded = torch.cat([torch.randn(1, 3, 16), x], dim=1)
    real = torch.tensor([[False] * 3 + [True] * 5])
    positions = (real.long().cumsum(-1) - 1).clamp(min=0)  # 0 0 0 0 1 2 3 4
    out = mha(padded, positions, key_padding_mask=real)
    torch.testing.assert_close(out[:, 3:], mha(x), atol=1e-5, rtol=1e-5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("make_scheme", [lambda: ALiBi(4), lambda: T5RelativeBias(4)])
def test_sdpa_gets_a_4d_bias_from_the_layer(monkeypatch, make_scheme):
    seen = []
    real_sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        seen.append(None if attn_mask is None else attn_mask.dim())
        return real_sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    MultiHeadAttention(16, 4, make_scheme())(torch.randn(2, 6, 16))
    assert seen == [4]


def _qkv(*shape):
    return torch.randn(*shape), torch.randn(*shape), torch.randn(*shape)


BAD_ATTENTION_CALLS = [
    (lambda: MultiHeadAttention(8, 4, ALiBi(1))(torch.randn(1, 3, 8)), ValueError, "num_heads=4"),
    (
        lambda: MultiHeadAttention(8, 4, T5RelativeBias(2))(torch.randn(1, 3, 8)),
        ValueError,
        "heads",
    ),
    (
        lambda: MultiHeadAttention(8, 2)(torch.randn(2, 3, 8), torch.zeros(3, 3, dtype=torch.long)),
        ValueError,
        "batch size",
    ),
    (
        lambda: MultiHeadAttention(8, 2)(torch.randn(2, 3, 8), key_padding_mask=[[1, 1, 1]]),
        TypeError,
        "key_padding_mask",
    ),
    (lambda: self_attention(torch.randn(3, 4), *torch.randn(3, 5, 2)), ValueError, "w_q"),
    (lambda: self_attention(torch.randn(3, 4), *torch.randn(3, 4, 2).long()), TypeError, "w_q"),
    (lambda: self_attention(torch.ones(3, 4).long(), *torch.randn(3, 4, 2)), TypeError, "x"),
    (
        lambda: permutation_equivariance_gap(None, torch.randn(3, 2), [0, 1, 2]),
        TypeError,
        "attn_fn",
    ),
    (lambda: causal_mask(2.5), TypeError, "q_len"),
    (lambda: causal_mask(True, 3), TypeError, "q_len"),
    (lambda: causal_mask(4, 2), ValueError, "q_len <= k_len"),
    (lambda: causal_mask(2, 8, offset=7), ValueError, "offset"),
    (lambda: causal_mask(2, 8, offset=-1), ValueError, "offset"),
    (lambda: attention_reference(*_qkv(2, 3, 4)[:2], torch.randn(2, 5, 4)), ValueError, "v"),
    (
        lambda: attention_reference(torch.ones(3, 4, dtype=torch.long), *_qkv(3, 4)[:2]),
        TypeError,
        "q",
    ),
    (lambda: attention_reference([[1.0]], [[1.0]], [[1.0]]), TypeError, "q"),
    (
        lambda: attention_reference(torch.randn(3, 4), torch.randn(3, 5), torch.randn(3, 4)),
        ValueError,
        "head_dim",
    ),
    (lambda: attention_reference(*_qkv(3, 4), bias=torch.randn(4, 4)), ValueError, "bias"),
    (lambda: attention_reference(*_qkv(3, 4), causal=1), TypeError, "causal"),
    (
        lambda: attention_sdpa(*_qkv(1, 2, 3, 4), key_padding_mask=torch.ones(5)),
        ValueError,
        "key_padding_mask",
    ),
    (
        lambda: attention_sdpa(*_qkv(1, 2, 3, 4), key_padding_mask=torch.full((3,), 2)),
        TypeError,
        "key_padding_mask",
    ),
    (
        lambda: attention_sdpa(*_qkv(1, 2, 3, 4), bias=torch.randn(2, 3, 3).long()),
        TypeError,
        "bias",
    ),
    (lambda: MultiHeadAttention(10, 4), ValueError, "divisible"),
    (lambda: MultiHeadAttention(8.0, 4), TypeError, "d_model"),
    (lambda: MultiHeadAttention(8, 2, scheme="alibi"), TypeError, "scheme"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(1, 3, 6)), ValueError, "d_model"),
    (lambda: MultiHeadAttention(8, 2)(torch.randn(3, 8)), ValueError, "x"),
    (
        lambda: MultiHeadAttention(8, 2)(torch.randn(1, 3, 8), torch.arange(4)),
        ValueError,
        "positions",
    ),
    (
        lambda: MultiHeadAttention(8, 2)(torch.randn(1, 3, 8), torch.arange(3.0)),
        TypeError,
        "positions",
    ),
    (
        lambda: permutation_equivariance_gap(lambda t: t, torch.randn(3, 2), [0, 0, 1]),
        ValueError,
        "perm",
    ),
]


@pytest.mark.parametrize("call, error, word", BAD_ATTENTION_CALLS)
def test_bad_arguments_raise_naming_the_argument(call, error, word):
    with pytest.raises(error, match=word):
        call()
