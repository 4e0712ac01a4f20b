"""Notebook 05 graders reject the classic mistakes and accept right answers."""

import math

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "05_alibi.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
alibi_bias = SOL["alibi_bias"]
alibi_slopes = SOL["alibi_slopes"]
attention_with_alibi = SOL["attention_with_alibi"]


def naive_slopes(n):
    """2^(−8(h+1)/n) for every n"""
    return torch.tensor([2 ** (-8 * (h + 1) / n) for h in range(n)])


def slope_one_first(n):
    """2^(−8h/n)"""
    return torch.tensor([2 ** (-8 * h / n) for h in range(n)])


def reversed_slopes(n):
    """steepest last → first"""
    return alibi_slopes(n).flip(0)


def sorted_slopes(n):
    """sorts the reference slopes"""
    return alibi_slopes(n).sort(descending=True).values


def ratio_without_eight(n):
    """2^(−(h+1)/n)"""
    return torch.tensor([2 ** (-(h + 1) / n) for h in range(n)])


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (naive_slopes, "not a power of two"),
        (slope_one_first, "off by one"),
        (reversed_slopes, "reverse"),
        (sorted_slopes, "not monotone"),
        (ratio_without_eight, "2^(−8/n)"),
    ],
)
def test_slopes_grader_rejects(wrong, hint):
    assert_rejected("alibi_slopes", wrong, hint)


def _bias(
    n,
    q_len,
    k_len=None,
    *,
    causal=True,
    sign=-1,
    mask=True,
    top_left=False,
    reverse=False,
    abs_causal=False,
):
    k_len = q_len if k_len is None else k_len
    i = torch.arange(q_len)[:, None] + (0 if top_left else k_len - q_len)
    dist = (i - torch.arange(k_len)[None, :]).float()
    m = alibi_slopes(n)
    m = (m.flip(0) if reverse else m)[:, None, None]
    if not causal:
        return sign * m * dist.abs()
    b = sign * m * (dist.abs() if abs_causal else dist)
    return b.masked_fill(dist < 0, float("-inf")) if mask else b


def _b(doc, **switches):
    def fn(num_heads, q_len, k_len=None, *, causal=True):
        return _bias(num_heads, q_len, k_len, causal=causal, **switches)

    fn.__doc__ = doc
    return fn


def ignores_causal_flag(num_heads, q_len, k_len=None, *, causal=True):
    """always causal"""
    return alibi_bias(num_heads, q_len, k_len, causal=True)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_b("positive sign", sign=1), "positive sign"),
        (_b("no causal mask", mask=False), "mask is missing"),
        (_b("mask aligned to the start", top_left=True), "aligned to the start"),
        (_b("slopes reversed", reverse=True), "reverse"),
        (_b("|i − j| without mask", abs_causal=True, mask=False), "|i − j|"),
        (ignores_causal_flag, "not causal"),
    ],
)
def test_bias_grader_rejects(wrong, hint):
    assert_rejected("alibi_bias", wrong, hint)


def _att(
    q,
    k,
    v,
    slopes,
    *,
    mask=True,
    sign=-1,
    use_bias=True,
    top_left=False,
    scale=True,
    after_softmax=False,
):
    q_len, k_len = q.shape[-2], k.shape[-2]
    i = torch.arange(q_len)[:, None] + (0 if top_left else k_len - q_len)
    dist = (i - torch.arange(k_len)[None, :]).float()
    bias = sign * slopes[:, None, None] * dist if use_bias else torch.zeros(q_len, k_len)
    scores = q @ k.transpose(-1, -2) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if mask:
        scores = scores.masked_fill(dist < 0, float("-inf"))
    if after_softmax:
        return (torch.softmax(scores, -1) + bias.masked_fill(dist < 0, 0)) @ v
    return torch.softmax(scores + bias, -1) @ v


def _t(doc, **switches):
    def fn(q, k, v, slopes):
        return _att(q, k, v, slopes, **switches)

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_t("no causal mask", mask=False), "causal mask"),
        (_t("positive sign", sign=1), "positive sign"),
        (_t("forgets the bias", use_bias=False), "no ALiBi bias"),
        (_t("mask aligned to the start", top_left=True), "aligned to the start"),
        (_t("no 1/√d", scale=False), "not scaled"),
        (_t("bias after softmax", after_softmax=True), "after the softmax"),
    ],
)
def test_attention_grader_rejects(wrong, hint):
    assert_rejected("attention_with_alibi", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    for name in ("alibi_slopes", "alibi_bias", "attention_with_alibi"):
        assert_accepted(name, ns[name])
