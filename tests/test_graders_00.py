"""Notebook 00 graders reject the classic mistakes and accept right answers."""

import math

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "00_attention_has_no_order.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
self_attention = SOL["self_attention"]
permutation_equivariance_gap = SOL["permutation_equivariance_gap"]


def _attend(scores, v, dim=-1):
    return torch.softmax(scores, dim=dim) @ v


def _future(seq, diagonal=1):
    return torch.ones(seq, seq, dtype=torch.bool).triu(diagonal=diagonal)


# --- wrong self_attention, written the way a learner would get them wrong -----------------


def no_scaling(x, w_q, w_k, w_v, causal=False):
    """forgets to divide by √d_k"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.transpose(-1, -2)
    if causal:
        s = s.masked_fill(_future(x.shape[-2]), float("-inf"))
    return _attend(s, v)


def scale_by_dk(x, w_q, w_k, w_v, causal=False):
    """divides by d_k instead of √d_k"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.transpose(-1, -2) / q.shape[-1]
    if causal:
        s = s.masked_fill(_future(x.shape[-2]), float("-inf"))
    return _attend(s, v)


def scale_by_d_model(x, w_q, w_k, w_v, causal=False):
    """divides by √d_model"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.transpose(-1, -2) / math.sqrt(x.shape[-1])
    if causal:
        s = s.masked_fill(_future(x.shape[-2]), float("-inf"))
    return _attend(s, v)


def softmax_over_queries(x, w_q, w_k, w_v, causal=False):
    """softmax over dim=-2"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(_future(x.shape[-2]), float("-inf"))
    return _attend(s, v, dim=-2)


def keys_times_queries(x, w_q, w_k, w_v, causal=False):
    """computes K Qᵀ"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = k @ q.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(_future(x.shape[-2]), float("-inf"))
    return _attend(s, v)


def mask_flipped(x, w_q, w_k, w_v, causal=False):
    """hides the past instead of the future"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(_future(x.shape[-2]).T, float("-inf"))
    return _attend(s, v)


def mask_after_softmax(x, w_q, w_k, w_v, causal=False):
    """zeroes future weights after the softmax"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    if causal:
        w = w * ~_future(x.shape[-2])
    return w @ v


def causal_ignored(x, w_q, w_k, w_v, causal=False):
    """never applies the mask"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    return _attend(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), v)


def mask_hides_diagonal(x, w_q, w_k, w_v, causal=False):
    """masks j >= i, so token 0 sees nothing"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(_future(x.shape[-2], diagonal=0), float("-inf"))
    return _attend(s, v)


def returns_weights(x, w_q, w_k, w_v, causal=False):
    """returns the attention weights, not weights @ V"""
    q, k = x @ w_q, x @ w_k
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(_future(x.shape[-2]), float("-inf"))
    return torch.softmax(s, dim=-1)


def plain_transpose(x, w_q, w_k, w_v, causal=False):
    """uses k.T, which breaks with batch axes"""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    s = q @ k.permute(*range(k.ndim - 1, -1, -1)) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(_future(x.shape[-2]), float("-inf"))
    return _attend(s, v)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (no_scaling, "not scaled"),
        (scale_by_dk, "divided by d_k"),
        (scale_by_d_model, "√d_model"),
        (softmax_over_queries, "dim=-2"),
        (keys_times_queries, "K Qᵀ"),
        (mask_flipped, "mask flipped"),
        (mask_after_softmax, "after the softmax"),
        (causal_ignored, "causal=True was ignored"),
        (mask_hides_diagonal, "hides the diagonal"),
        (returns_weights, "attention weights"),
        (plain_transpose, None),
    ],
)
def test_self_attention_grader_rejects(wrong, hint):
    assert_rejected("self_attention", wrong, hint)


# --- wrong permutation_equivariance_gap ---------------------------------------------------


def gap_unshuffled_output(attn_fn, x, perm):
    """compares with the unshuffled output"""
    return (attn_fn(x[..., perm, :]) - attn_fn(x)).abs().max().item()


def gap_inverse_perm(attn_fn, x, perm):
    """shuffles the output with the inverse permutation"""
    inverse = torch.argsort(torch.as_tensor(perm))
    return (attn_fn(x[..., perm, :]) - attn_fn(x)[..., inverse, :]).abs().max().item()


def gap_signed(attn_fn, x, perm):
    """max without abs"""
    return (attn_fn(x[..., perm, :]) - attn_fn(x)[..., perm, :]).max().item()


def gap_mean(attn_fn, x, perm):
    """mean absolute difference"""
    return (attn_fn(x[..., perm, :]) - attn_fn(x)[..., perm, :]).abs().mean().item()


def gap_sum(attn_fn, x, perm):
    """sum of absolute differences"""
    return (attn_fn(x[..., perm, :]) - attn_fn(x)[..., perm, :]).abs().sum().item()


def gap_batch_axis(attn_fn, x, perm):
    """permutes axis 0"""
    return (attn_fn(x[perm]) - attn_fn(x)[perm]).abs().max().item()


def gap_not_reduced(attn_fn, x, perm):
    """returns the elementwise differences"""
    return (attn_fn(x[..., perm, :]) - attn_fn(x)[..., perm, :]).abs()


def gap_always_zero(attn_fn, x, perm):
    """asserts the answer instead of measuring it"""
    return 0.0


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (gap_unshuffled_output, "unshuffled"),
        (gap_inverse_perm, "inverse permutation"),
        (gap_signed, "signed"),
        (gap_mean, "averaged"),
        (gap_sum, "summed"),
        (gap_batch_axis, "batch axis"),
        (gap_not_reduced, "single number"),
        (gap_always_zero, "returned 0"),
    ],
)
def test_gap_grader_rejects(wrong, hint):
    assert_rejected("permutation_equivariance_gap", wrong, hint)


# --- right answers ------------------------------------------------------------------------


def test_solution_notebook_answers_pass():
    ns = solution_namespace(NB)
    assert_accepted("self_attention", ns["self_attention"])
    assert_accepted("permutation_equivariance_gap", ns["permutation_equivariance_gap"])


def test_an_equivalent_formulation_passes():
    """A correct answer written differently (explicit exp/sum, −1e9 mask) must pass too."""

    def manual(x, w_q, w_k, w_v, causal=False):
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        s = torch.einsum("...id,...jd->...ij", q, k) / q.shape[-1] ** 0.5
        if causal:
            s = s + torch.triu(torch.full(s.shape[-2:], -1e9), diagonal=1)
        e = torch.exp(s - s.amax(-1, keepdim=True))
        return e / e.sum(-1, keepdim=True) @ v

    assert_accepted("self_attention", manual)
