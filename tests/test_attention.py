"""The attention reference: formula, causal mask, and permutation equivariance."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posenc.attention import (
    attention_reference,
    causal_mask,
    permutation_equivariance_gap,
    self_attention,
)


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
