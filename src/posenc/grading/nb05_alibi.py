"""Graders for notebook 05 · ALiBi, attention with linear biases."""

from __future__ import annotations

import torch

from posenc.alibi import alibi_bias, alibi_slopes, attention_with_alibi, bias_from_slopes
from posenc.attention import attention_reference
from posenc.grading.core import Case, Mistakes, call, exercise, expect_tensor, randn
from posenc.relative_bias import relative_positions

NOTEBOOK = "05_alibi"


# --- alibi_slopes -------------------------------------------------------------------------


def _slope_mistakes(n: int) -> Mistakes:
    h = torch.arange(n, dtype=torch.float64)
    ref = alibi_slopes(n)
    return Mistakes(
        {
            "naive 2^(−8(h+1)/n) for a head count that is not a power of two; the paper's "
            "code takes the nearest lower power of two and fills in every other slope of the "
            "next one": lambda: (2.0 ** (-8 * (h + 1) / n)).float() if n & (n - 1) else None,
            "off by one in the exponent: 2^(−8h/n) gives head 0 a slope of 1": lambda: (
                2.0 ** (-8 * h / n)
            ).float(),
            "slopes in reverse order: head 0 has the steepest slope": lambda: ref.flip(0),
            "slopes sorted; for a non-power-of-two head count the reference order is not "
            "monotone (the interleaved extra slopes come last)": lambda: (
                ref.sort(descending=True).values if n & (n - 1) else None
            ),
            "slope 2^(−h/n); the ratio between heads is 2^(−8/n)": lambda: (
                2.0 ** (-(h + 1) / n)
            ).float(),
        }
    )


def _slope_case(n: int) -> Case:
    label = f"{n} heads"

    def run(fn):
        out = call(fn, n)
        if isinstance(out, list):
            out = torch.tensor(out)
        expect_tensor(
            out, alibi_slopes(n), label, _slope_mistakes(n), atol=1e-6, rtol=1e-5, check_dtype=False
        )

    return Case(label, run)


@exercise("alibi_slopes", NOTEBOOK)
def alibi_slopes_cases() -> list[Case]:
    return [_slope_case(n) for n in (1, 2, 8, 16, 12, 6, 3, 40)]


# --- alibi_bias ---------------------------------------------------------------------------


def _bias_mistakes(n, q_len, k_len, causal) -> Mistakes:
    k_len = q_len if k_len is None else k_len
    slopes = alibi_slopes(n)
    distance = -relative_positions(q_len, k_len).float()  # i − j, aligned to the end
    start = (torch.arange(q_len)[:, None] - torch.arange(k_len)[None, :]).float()  # top-left
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
        expected = alibi_bias(n, q_len, k_len, causal=causal)
        expect_tensor(
            out,
            expected,
            label,
            _bias_mistakes(n, q_len, k_len, causal),
            atol=1e-6,
            rtol=1e-5,
            check_dtype=False,
        )

    return Case(label, run)


@exercise("alibi_bias", NOTEBOOK)
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
    ref_bias = bias_from_slopes(slopes, q_len, k_len)
    distance = -relative_positions(q_len, k_len).float()
    start = (torch.arange(q_len)[:, None] - torch.arange(k_len)[None, :]).float()
    m = slopes[:, None, None]
    return Mistakes(
        {
            "the causal mask is missing": lambda: attention_reference(q, k, v, bias=-m * distance),
            "positive sign on the bias: ALiBi subtracts m·(i − j)": lambda: attention_reference(
                q, k, v, bias=(m * distance).masked_fill(distance < 0, float("-inf"))
            ),
            "no ALiBi bias at all (plain causal attention)": lambda: attention_reference(
                q, k, v, causal=True
            ),
            "mask aligned to the start; with q_len < k_len the queries are the last "
            "positions": lambda: attention_reference(
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
        slopes = alibi_slopes(heads) * 4  # steeper than usual so the bias clearly matters
        out = call(fn, q, k, v, slopes)
        expected = attention_with_alibi(q, k, v, slopes)
        expect_tensor(out, expected, label, _attention_mistakes(q, k, v, slopes))

    return Case(label, run)


@exercise("attention_with_alibi", NOTEBOOK)
def attention_with_alibi_cases() -> list[Case]:
    return [
        _attention_case("1 head, seq 5, d 4", 0, (), 1, 5, 5, 4),
        _attention_case("8 heads, seq 12, d 8", 10, (), 8, 12, 12, 8),
        _attention_case("batch 2, 12 heads, seq 9, d 16", 20, (2,), 12, 9, 9, 16),
        _attention_case("4 heads, 2 queries × 10 keys (cache)", 30, (), 4, 2, 10, 8),
        _attention_case("batch 3, 3 heads, seq 1", 40, (3,), 3, 1, 1, 4),
    ]
