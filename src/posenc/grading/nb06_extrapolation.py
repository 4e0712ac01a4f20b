"""Graders for notebook 06 · Train short, test long."""

from __future__ import annotations

import math
from itertools import pairwise

import torch

from posenc.grading.core import (
    Case,
    Mismatch,
    allowed_error,
    call,
    exercise,
    expect_number,
    randn,
)

NOTEBOOK = "06_train_short_test_long"
OFF_LIMITS = (
    "posenc.experiments.extrapolation.perplexity_from_losses",
    "posenc.experiments.extrapolation.position_buckets",
)
MULTIPLES = (1, 2, 4, 8)  # bucket ends L, 2L, 4L, 8L


def perplexity64(losses: torch.Tensor) -> float:
    """exp(mean loss), the mean taken in float64."""
    return math.exp(losses.double().mean().item())


def buckets64(per_position: torch.Tensor, L: int) -> dict[str, float]:
    """Mean of [0, L), [L, 2L), [2L, 4L), [4L, 8L), each only when the window covers it."""
    ends = [0] + [m * L for m in MULTIPLES if m * L <= len(per_position)]
    v = per_position.double()
    return {f"{lo}-{hi}": v[lo:hi].mean().item() for lo, hi in pairwise(ends)}


def mean_rel_tol(losses: torch.Tensor) -> float:
    """The sum rule for a mean of n values computed in float32 (or better, whatever the
    losses' dtype): ≤ SLACK·u·n relative."""
    return allowed_error(losses.numel())


def _losses(seed: int, n: int) -> torch.Tensor:
    return randn(n, seed=seed).abs() * 2 + 0.5  # positive, varied, in nats


def _ppl_case(label: str, losses: torch.Tensor) -> Case:
    def run(fn):
        out = call(fn, losses)
        expected = perplexity64(losses)
        wrong = {
            "returned the mean loss; perplexity is exp(mean loss)": losses.mean().item(),
            "averaged exp(loss) per token; perplexity is exp of the *mean* loss": (
                losses.exp().mean().item()
            ),
            "exponentiated the sum of the losses; average them first": (
                math.exp(min(losses.sum().item(), 700))
            ),
            "used 2^mean; the losses are in nats, so use e^mean (torch.exp)": (
                2 ** losses.mean().item()
            ),
        }
        # exp turns the mean's absolute error into a relative one: n·u·(1 + |mean|)
        rel_tol = mean_rel_tol(losses) * (1 + abs(math.log(expected)))
        expect_number(out, expected, label, wrong, rel_tol=rel_tol)

    return Case(label, run)


@exercise("perplexity_from_losses", NOTEBOOK, OFF_LIMITS)
def perplexity_from_losses_cases() -> list[Case]:
    return [
        _ppl_case("one loss of ln 4", torch.tensor([math.log(4.0)])),
        _ppl_case("10 losses", _losses(0, 10)),
        _ppl_case("a (4, 32) batch of losses", _losses(1, 128).view(4, 32)),
        _ppl_case("1000 losses", _losses(2, 1000)),
        _ppl_case("float64 losses", _losses(3, 50).double()),
    ]


def _bucket_variants(per_position: torch.Tensor, L: int) -> dict[str, dict[str, float]]:
    edges = [0] + [m * L for m in (1, 2, 4, 8) if m * L <= len(per_position)]
    v = per_position.double()
    cumulative = {f"{lo}-{hi}": v[:hi].mean().item() for lo, hi in pairwise(edges)}
    linear_edges = [0] + [m * L for m in (1, 2, 3, 4) if m * L <= len(v)]
    linear = {f"{lo}-{hi}": v[lo:hi].mean().item() for lo, hi in pairwise(linear_edges)}
    inclusive = {f"{lo}-{hi}": v[lo : hi + 1].mean().item() for lo, hi in pairwise(edges)}
    sums = {f"{lo}-{hi}": v[lo:hi].sum().item() for lo, hi in pairwise(edges)}
    return {
        "cumulative means (0 … hi); each bucket covers only lo … hi − 1": cumulative,
        "buckets L, 2L, 3L, 4L; they double: [0, L), [L, 2L), [2L, 4L), [4L, 8L)": linear,
        "bucket ends included; ranges are half-open, lo ≤ position < hi": inclusive,
        "summed the losses in a bucket; take their mean": sums,
    }


def _close_dicts(a, b, rel_tol=1e-5) -> bool:
    return (
        isinstance(a, dict)
        and set(a) == set(b)
        and all(
            isinstance(a[k], (int, float, torch.Tensor))
            and math.isclose(float(a[k]), b[k], rel_tol=rel_tol, abs_tol=1e-8)
            for k in b
        )
    )


def _bucket_end(key) -> int:
    """The hi of a "lo-hi" key, or −1 when the key has another form."""
    end = str(key).rsplit("-", 1)[-1]
    return int(end) if end.isdigit() else -1


def _bucket_case(label: str, per_position: torch.Tensor, L: int) -> Case:
    def run(fn):
        out = call(fn, per_position, L)
        expected = buckets64(per_position, L)
        if _close_dicts(out, expected, max(mean_rel_tol(per_position), 1e-9)):
            return
        for hint, wrong in _bucket_variants(per_position, L).items():
            if _close_dicts(out, wrong):
                raise Mismatch(hint, specific=True)
        if isinstance(out, dict) and set(out) != set(expected):
            partial = sorted(
                k for k in set(out) - set(expected) if _bucket_end(k) > len(per_position)
            )
            raise Mismatch(
                f"{label}: keys {sorted(out)}, expected {list(expected)}"
                + (
                    f" — {partial} is not fully covered by the window; leave it out"
                    if partial
                    else ""
                ),
                specific=bool(partial),
            )
        raise Mismatch(f"{label}: returned {out!r:.80}, expected {expected}")

    return Case(label, run)


@exercise("position_buckets", NOTEBOOK, OFF_LIMITS)
def position_buckets_cases() -> list[Case]:
    return [
        _bucket_case("positions 0 … 39, L = 5", torch.arange(40.0), 5),
        _bucket_case("random losses, 256 positions, L = 32", _losses(4, 256), 32),
        _bucket_case("a window of 2L covers two buckets", _losses(5, 64), 32),
        _bucket_case("a window of exactly L", _losses(6, 16), 16),
        _bucket_case("a window of 3L: the partial 2L–4L bucket is left out", _losses(7, 30), 10),
    ]


# --- interpretation: which scheme extrapolates best? --------------------------------------


def best_extrapolator_reference(ppl: dict, train_len: int) -> str:
    """The scheme with the smallest ppl(8L) / ppl(L), among those that can run at 8L."""
    long, short = str(8 * train_len), str(train_len)
    ratios = {s: v[long] / v[short] for s, v in ppl.items() if v.get(long) is not None}
    return min(ratios, key=ratios.get)


TABLES = [
    # (label, ppl table): built so that each classic misreading picks another scheme
    (
        "ratio beats raw perplexity",
        {
            "a": {"32": 2.0, "256": 3.2},
            "b": {"32": 3.0, "256": 3.3},
            "c": {"32": 2.5, "256": 3.1},
            "d": {"32": 1.8, "256": None},
        },
    ),
    (
        "a scheme that cannot run at 8L is skipped",
        {
            "learned": {"32": 1.5, "256": None},
            "rope": {"32": 2.0, "256": 2.6},
            "alibi": {"32": 2.2, "256": 2.4},
            "sinusoidal": {"32": 2.1, "256": 7.0},
        },
    ),
    (
        "improvement counts (ratio < 1)",
        {"x": {"32": 3.0, "256": 2.7}, "y": {"32": 2.0, "256": 2.1}, "z": {"32": 1.9, "256": 1.8}},
    ),
]


def _interpretation_case(label: str, ppl: dict) -> Case:
    def run(fn):
        out = call(fn, {k: dict(v) for k, v in ppl.items()}, 32)
        expected = best_extrapolator_reference(ppl, 32)
        if out == expected:
            return
        runnable = {s: v for s, v in ppl.items() if v["256"] is not None}
        picks = {
            "picked the lowest perplexity at 8L; extrapolation is the ratio ppl(8L)/ppl(L)": min(
                runnable, key=lambda s: runnable[s]["256"]
            ),
            "picked the lowest perplexity at L; that is in-distribution quality": min(
                ppl, key=lambda s: ppl[s]["32"]
            ),
            "picked the largest ratio; the best extrapolator degrades least (smallest)": max(
                runnable, key=lambda s: runnable[s]["256"] / runnable[s]["32"]
            ),
        }
        for hint, pick in picks.items():
            if out == pick:
                raise Mismatch(hint, specific=True)
        raise Mismatch(f"{label}: picked {out!r}, expected {expected!r}")

    return Case(label, run)


@exercise("best_extrapolator", NOTEBOOK, OFF_LIMITS)
def best_extrapolator_cases() -> list[Case]:
    return [_interpretation_case(label, table) for label, table in TABLES]
