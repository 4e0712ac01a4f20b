"""Notebook 03 graders reject the classic mistakes and accept right answers."""

import math

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "03_relative_bias.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
relative_bias_matrix = SOL["relative_bias_matrix"]
t5_relative_bucket = SOL["t5_relative_bucket"]


def _bucket(
    rel,
    bidirectional=True,
    num_buckets=32,
    max_distance=128,
    *,
    flip_bidi=False,
    linear=False,
    boundary="<",
    sign=1,
    cap=True,
    rounding=False,
    future_abs=False,
):
    """A learner-style T5 bucket with switches for each classic mistake."""
    rel = sign * rel.long()
    bidirectional = bidirectional != flip_bidi
    out = torch.zeros_like(rel)
    n = num_buckets
    if bidirectional:
        n //= 2
        out += (rel > 0).long() * n
        dist = rel.abs()
    else:
        dist = rel.abs() if future_abs else torch.clamp(-rel, min=0)
    exact = (num_buckets if boundary == "unhalved" else n) // 2
    if boundary == "<=":  # exact buckets 0 … exact inclusive, log buckets start one later
        small = dist <= exact
        d = dist.clamp(min=1).float()
        val = torch.log(d / exact) / math.log(max_distance / exact) * (n - exact - 1)
        large = exact + 1 + val.long()
        return out + torch.where(small, dist, torch.clamp(large, max=n - 1))
    small = dist < exact
    d = dist.clamp(min=1).float()
    if linear:
        frac = (d - exact) / (max_distance - exact)
    else:
        frac = torch.log(d / exact) / math.log(max_distance / exact)
    val = frac * (n - exact)
    large = exact + (torch.round(val) if rounding else val).long()
    if cap:
        large = torch.clamp(large, max=n - 1)
    return out + torch.where(small, dist, large)


def _named(doc, **switches):
    def fn(rel, bidirectional=True, num_buckets=32, max_distance=128):
        return _bucket(rel, bidirectional, num_buckets, max_distance, **switches)

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_named("uni/bidirectional confused", flip_bidi=True), "confused"),
        (_named("linear instead of log buckets", linear=True), "linear"),
        (_named("<= at the exact/log boundary", boundary="<="), "off by one"),
        (_named("query − key offsets", sign=-1), "sign flipped"),
        (_named("exact range from num_buckets before halving", boundary="unhalved"), "halving"),
        (_named("no cap at the last bucket", cap=False), "last bucket"),
        (_named("rounds the log bucket", rounding=True), "rounded"),
        (_named("future keys by |j − i| in a decoder", future_abs=True), "bucket 0"),
    ],
)
def test_bucket_grader_rejects(wrong, hint):
    assert_rejected("t5_relative_bucket", wrong, hint)


def test_float_buckets_rejected():
    def floats(rel, bidirectional=True, num_buckets=32, max_distance=128):
        return t5_relative_bucket(
            rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
        ).float()

    assert_rejected("t5_relative_bucket", floats, "integers")


def _matrix(
    table,
    q_len,
    k_len,
    bidirectional=True,
    max_distance=128,
    *,
    sign=1,
    top_left=False,
    bidi_ignored=False,
    keep_heads_last=False,
):
    i = torch.arange(q_len)[:, None] + (0 if top_left else k_len - q_len)
    rel = sign * (torch.arange(k_len)[None, :] - i)
    b = t5_relative_bucket(
        rel,
        bidirectional=True if bidi_ignored else bidirectional,
        num_buckets=table.shape[0],
        max_distance=max_distance,
    )
    out = table[b]
    return out if keep_heads_last else out.permute(2, 0, 1)


def _m(doc, **switches):
    def fn(table, q_len, k_len, *, bidirectional=True, max_distance=128):
        return _matrix(table, q_len, k_len, bidirectional, max_distance, **switches)

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_m("i − j offsets", sign=-1), "query − key"),
        (_m("queries aligned to the start", top_left=True), "aligned to the start"),
        (_m("bidirectional ignored", bidi_ignored=True), "bidirectional"),
        (_m("heads last", keep_heads_last=True), "heads first"),
    ],
)
def test_bias_matrix_grader_rejects(wrong, hint):
    assert_rejected("relative_bias_matrix", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    assert_accepted("t5_relative_bucket", ns["t5_relative_bucket"])
    assert_accepted("relative_bias_matrix", ns["relative_bias_matrix"])


def _shaw(q, k, v, table_k, table_v, K, *, clip="both", sign=1, value=True, scale=True):
    """A learner-style Shaw attention with a switch for each classic mistake."""
    q_len, k_len = q.shape[-2], k.shape[-2]
    rel = sign * (torch.arange(k_len)[None, :] - torch.arange(k_len - q_len, k_len)[:, None])
    rows = {
        "both": rel.clamp(-K, K) + K,
        "none": rel + K,  # negative rows wrap round, rows past the table raise
        "zero_to_k": rel.clamp(0, K) + K,
    }[clip]
    scores = q @ k.transpose(-1, -2) + torch.einsum("...id,ijd->...ij", q, table_k[rows])
    if scale:
        scores = scores / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores, dim=-1)
    out = weights @ v
    return out + torch.einsum("...ij,ijd->...id", weights, table_v[rows]) if value else out


def _s(doc, **switches):
    def fn(q, k, v, table_k, table_v, max_relative):
        return _shaw(q, k, v, table_k, table_v, max_relative, **switches)

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_s("no clipping", clip="none"), "clip(j − i, −K, K) + K"),
        (_s("offsets i − j", sign=-1), "i − j"),
        (_s("value term missing", value=False), "value term is missing"),
        (_s("no 1/√d", scale=False), "not divided by √d"),
        (_s("clipped to [0, K]", clip="zero_to_k"), "clipped to [0, K]"),
    ],
)
def test_shaw_grader_rejects(wrong, hint):
    assert_rejected("shaw_relative_attention", wrong, hint)


def test_shaw_solution_passes():
    assert_accepted("shaw_relative_attention", solution_namespace(NB)["shaw_relative_attention"])
