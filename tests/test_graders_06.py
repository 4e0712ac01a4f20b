"""Notebook 06 graders reject the classic mistakes and accept right answers."""

import math
from itertools import pairwise

import pytest
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "06_train_short_test_long.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
perplexity_from_losses = SOL["perplexity_from_losses"]
position_buckets = SOL["position_buckets"]
best_extrapolator_reference = SOL["best_extrapolator"]


def ppl_mean_loss(losses):
    """forgets the exp"""
    return losses.mean().item()


def ppl_mean_of_exp(losses):
    """mean of per-token perplexities"""
    return losses.exp().mean().item()


def ppl_exp_sum(losses):
    """exp of the summed loss"""
    return math.exp(min(losses.sum().item(), 700))


def ppl_base_two(losses):
    """2 ** mean"""
    return 2 ** losses.mean().item()


def ppl_returns_tensor_per_row(losses):
    """per-row perplexities"""
    return losses.view(-1, losses.shape[-1]).mean(-1).exp()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (ppl_mean_loss, "mean loss"),
        (ppl_mean_of_exp, "averaged exp"),
        (ppl_exp_sum, "sum"),
        (ppl_base_two, "nats"),
        (ppl_returns_tensor_per_row, "single number"),
    ],
)
def test_perplexity_grader_rejects(wrong, hint):
    assert_rejected("perplexity_from_losses", wrong, hint)


def _edges(n, L, multiples=(1, 2, 4, 8)):
    return [0] + [m * L for m in multiples if m * L <= n]


def buckets_cumulative(per_position, train_len):
    """mean of 0 … hi"""
    e = _edges(len(per_position), train_len)
    return {f"{lo}-{hi}": per_position[:hi].mean().item() for lo, hi in pairwise(e)}


def buckets_linear(per_position, train_len):
    """L, 2L, 3L, 4L edges"""
    e = _edges(len(per_position), train_len, (1, 2, 3, 4))
    return {f"{lo}-{hi}": per_position[lo:hi].mean().item() for lo, hi in pairwise(e)}


def buckets_inclusive(per_position, train_len):
    """includes hi"""
    e = _edges(len(per_position), train_len)
    return {f"{lo}-{hi}": per_position[lo : hi + 1].mean().item() for lo, hi in pairwise(e)}


def buckets_sum(per_position, train_len):
    """sums"""
    e = _edges(len(per_position), train_len)
    return {f"{lo}-{hi}": per_position[lo:hi].sum().item() for lo, hi in pairwise(e)}


def buckets_partial(per_position, train_len):
    """keeps a bucket the window only partly covers"""
    out, lo = {}, 0
    for hi in (train_len, 2 * train_len, 4 * train_len, 8 * train_len):
        if lo >= len(per_position):
            break
        out[f"{lo}-{hi}"] = per_position[lo:hi].mean().item()
        lo = hi
    return out


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (buckets_cumulative, "cumulative"),
        (buckets_linear, "double"),
        (buckets_inclusive, "half-open"),
        (buckets_sum, "summed"),
        (buckets_partial, "not fully covered"),
    ],
)
def test_position_buckets_grader_rejects(wrong, hint):
    assert_rejected("position_buckets", wrong, hint)


def lowest_at_8L(ppl, train_len):
    """lowest perplexity at 8L"""
    long = str(8 * train_len)
    return min((s for s in ppl if ppl[s][long] is not None), key=lambda s: ppl[s][long])


def lowest_at_L(ppl, train_len):
    """lowest perplexity at L"""
    return min(ppl, key=lambda s: ppl[s][str(train_len)])


def largest_ratio(ppl, train_len):
    """largest degradation"""
    long, short = str(8 * train_len), str(train_len)
    ok = [s for s in ppl if ppl[s][long] is not None]
    return max(ok, key=lambda s: ppl[s][long] / ppl[s][short])


def crashes_on_none(ppl, train_len):
    """does not skip schemes that cannot run"""
    long, short = str(8 * train_len), str(train_len)
    return min(ppl, key=lambda s: ppl[s][long] / ppl[s][short])


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (lowest_at_8L, "lowest perplexity at 8L"),
        (lowest_at_L, "at L"),
        (largest_ratio, "largest ratio"),
        (crashes_on_none, "TypeError"),
    ],
)
def test_interpretation_grader_rejects(wrong, hint):
    assert_rejected("best_extrapolator", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    assert_accepted("perplexity_from_losses", ns["perplexity_from_losses"])
    assert_accepted("position_buckets", ns["position_buckets"])
    assert_accepted("best_extrapolator", ns["best_extrapolator"], minimum=3)
