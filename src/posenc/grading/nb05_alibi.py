"""Graders for notebook 05 · ALiBi, attention with linear biases."""

from __future__ import annotations

import math

import torch

from posenc.grading.core import (
    Case,
    Mistakes,
    allowed_error,
    attention64,
    attention_allowed,
    call,
    exercise,
    expect_close,
    randn,
)

NOTEBOOK = "05_alibi"
OFF_LIMITS = (
    "posenc.alibi.alibi_slopes",
    "posenc.alibi.bias_from_slopes",
    "posenc.alibi.alibi_bias",
    "posenc.alibi.attention_with_alibi",
    "posenc.alibi.ALiBi",
)


def slopes64(n: int) -> torch.Tensor:
    """The paper's get_slopes in float64: the geometric ladder 2^(−8/n)^(h+1) for a power of
    two; otherwise the ladder of the nearest lower power of two, then every other slope of
    the next power of two.  (n,)"""
    if n & (n - 1) == 0:
        start = 2.0 ** (-8.0 / n)
        return torch.tensor([start ** (h + 1) for h in range(n)], dtype=torch.float64)
    closest = 2 ** math.floor(math.log2(n))
    return torch.cat([slopes64(closest), slopes64(2 * closest)[0::2][: n - closest]])


def relative_positions(q_len: int, k_len: int | None = None) -> torch.Tensor:
    """j − i for queries aligned to the end of the keys.  (q_len, k_len)"""
    k_len = q_len if k_len is None else k_len
    return torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None] - (k_len - q_len)


def bias64(slopes: torch.Tensor, q_len: int, k_len: int | None, causal=True) -> torch.Tensor:
    """−m_h·(i − j), −inf after the query (causal) or −m_h·|i − j|.  (heads, q_len, k_len)"""
    distance = -relative_positions(q_len, k_len).double()  # i − j
    m = slopes.double()[:, None, None]
    if not causal:
        return -m * distance.abs()
    return (-m * distance).masked_fill(distance < 0, float("-inf"))


# --- alibi_slopes -------------------------------------------------------------------------


def _slope_mistakes(n: int) -> Mistakes:
    h = torch.arange(n, dtype=torch.float64)
    ref = slopes64(n)
    return Mistakes(
        {
            "naive 2^(−8(h+1)/n) for a head count that is not a power of two; the paper's "
            "code takes the nearest lower power of two and fills in every other slope of the "
            "next one": lambda: (2.0 ** (-8 * (h + 1) / n)) if n & (n - 1) else None,
            "off by one in the exponent: 2^(−8h/n) gives head 0 a slope of 1": lambda: (
                2.0 ** (-8 * h / n)
            ),
            "slopes in reverse order: head 0 has the steepest slope": lambda: ref.flip(0),
            "slopes sorted; for a non-power-of-two head count the reference order is not "
            "monotone (the interleaved extra slopes come last)": lambda: (
                ref.sort(descending=True).values if n & (n - 1) else None
            ),
            "slope 2^(−h/n); the ratio between heads is 2^(−8/n)": lambda: 2.0 ** (-(h + 1) / n),
        }
    )


def _slope_case(n: int) -> Case:
    label = f"{n} heads"

    def run(fn):
        out = call(fn, n)
        if isinstance(out, list):
            out = torch.tensor(out)
        truth = slopes64(n)
        allowed = allowed_error(9 * truth)  # 2^e with |e| ≤ 8 rounded: ≤ 8·ln2·u relative
        expect_close(out, truth, label, allowed, _slope_mistakes(n), dtype=None)

    return Case(label, run)


@exercise("alibi_slopes", NOTEBOOK, OFF_LIMITS)
def alibi_slopes_cases() -> list[Case]:
    return [_slope_case(n) for n in (1, 2, 8, 16, 12, 6, 3, 40)]


# --- alibi_bias ---------------------------------------------------------------------------


def _bias_mistakes(n, q_len, k_len, causal) -> Mistakes:
    k_len = q_len if k_len is None else k_len
    slopes = slopes64(n)
    distance = -relative_positions(q_len, k_len).double()  # i − j, aligned to the end
    start = (torch.arange(q_len)[:, None] - torch.arange(k_len)[None, :]).double()  # top-left
    m = slopes[:, None, None]
    m_rev = slopes.flip(0)[:, None, None]

    def causal_from(dist, slope=m, sign=-1.0):
        return (sign * slope * dist).masked_fill(dist < 0, float("-inf"))

    mistakes = {
        "positive sign: ALiBi *subtracts* m·(i − j), so far keys are penalised": lambda: (
            causal_from(distance, sign=1.0) if causal else m * distance.abs()
        ),
        "slopes in reverse order across heads": lambda: (
            causal_from(distance, slope=m_rev) if causal else -m_rev * distance.abs()
        ),
    }
    if causal:
        mistakes.update(
            {
                "the causal mask is missing: keys after the query need −inf": lambda: -m * distance,
                "mask aligned to the start; with q_len < k_len the queries are the *last* "
                "q_len positions (decoding with a cache)": lambda: causal_from(start),
                "|i − j| used with the causal mask; the causal bias is −m·(i − j) (the same "
                "where it is not masked) but future keys must be −inf, not penalised": lambda: (
                    -m * distance.abs()
                ),
            }
        )
    else:
        mistakes["not causal: the bias is −m·|i − j| with no mask"] = lambda: causal_from(distance)
    return Mistakes(mistakes)


def _bias_case(label, n, q_len, k_len, causal, pass_k=True) -> Case:
    def run(fn):
        if pass_k:
            out = call(fn, n, q_len, k_len, causal=causal)
        else:
            out = call(fn, n, q_len)
        truth = bias64(slopes64(n), q_len, k_len, causal)
        allowed = allowed_error(10 * truth.abs().nan_to_num(posinf=0.0))  # slope, then × (i − j)
        mistakes = _bias_mistakes(n, q_len, k_len, causal)
        expect_close(out, truth, label, allowed, mistakes, dtype=None)

    return Case(label, run)


@exercise("alibi_bias", NOTEBOOK, OFF_LIMITS)
def alibi_bias_cases() -> list[Case]:
    return [
        _bias_case(
            "8 heads, 6 × 6, k_len omitted (causal by default)", 8, 6, None, True, pass_k=False
        ),
        _bias_case("12 heads, 10 × 10, causal", 12, 10, 10, True),
        _bias_case("4 heads, 3 queries × 9 keys (cache)", 4, 3, 9, True),
        _bias_case("1 head, 1 query × 20 keys", 1, 1, 20, True),
        _bias_case("6 heads, 7 × 7, not causal", 6, 7, 7, False),
    ]


# --- attention_with_alibi -----------------------------------------------------------------


def _attention_mistakes(q, k, v, slopes) -> Mistakes:
    q_len, k_len = q.shape[-2], k.shape[-2]
    ref_bias = bias64(slopes, q_len, k_len)
    distance = -relative_positions(q_len, k_len).double()
    start = (torch.arange(q_len)[:, None] - torch.arange(k_len)[None, :]).double()
    m = slopes.double()[:, None, None]
    q, k, v = q.double(), k.double(), v.double()
    return Mistakes(
        {
            "the causal mask is missing": lambda: attention64(q, k, v, bias=-m * distance),
            "positive sign on the bias: ALiBi subtracts m·(i − j)": lambda: attention64(
                q, k, v, bias=(m * distance).masked_fill(distance < 0, float("-inf"))
            ),
            "no ALiBi bias at all (plain causal attention)": lambda: attention64(
                q, k, v, causal=True
            ),
            "mask aligned to the start; with q_len < k_len the queries are the last "
            "positions": lambda: attention64(
                q, k, v, bias=(-m * start).masked_fill(start < 0, float("-inf"))
            ),
            "scores not scaled by 1/√d before adding the bias": lambda: (
                torch.softmax(q @ k.transpose(-1, -2) + ref_bias, dim=-1) @ v
            ),
            "bias added after the softmax; it belongs to the scores": lambda: (
                (
                    torch.softmax(
                        (q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5).masked_fill(
                            distance < 0, float("-inf")
                        ),
                        dim=-1,
                    )
                    + ref_bias.masked_fill(distance < 0, 0.0)
                )
                @ v
            ),
        }
    )


def _attention_case(label, seed, lead, heads, q_len, k_len, d) -> Case:
    def run(fn):
        q = randn(*lead, heads, q_len, d, seed=seed)
        k, v = (
            randn(*lead, heads, k_len, d, seed=seed + 1),
            randn(*lead, heads, k_len, d, seed=seed + 2),
        )
        slopes = (slopes64(heads) * 4).float()  # steeper than usual so the bias clearly matters
        out = call(fn, q, k, v, slopes)
        truth = attention64(q, k, v, bias=bias64(slopes, q_len, k_len))
        allowed = attention_allowed(q, k, v, bias_size=slopes.max().item() * k_len)
        expect_close(out, truth, label, allowed, _attention_mistakes(q, k, v, slopes))

    return Case(label, run)


@exercise("attention_with_alibi", NOTEBOOK, OFF_LIMITS)
def attention_with_alibi_cases() -> list[Case]:
    return [
        _attention_case("1 head, seq 5, d 4", 0, (), 1, 5, 5, 4),
        _attention_case("8 heads, seq 12, d 8", 10, (), 8, 12, 12, 8),
        _attention_case("batch 2, 12 heads, seq 9, d 16", 20, (2,), 12, 9, 9, 16),
        _attention_case("4 heads, 2 queries × 10 keys (cache)", 30, (), 4, 2, 10, 8),
        _attention_case("batch 3, 3 heads, seq 1", 40, (3,), 3, 1, 1, 4),
    ]
