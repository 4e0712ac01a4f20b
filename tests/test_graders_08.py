"""Notebook 08 graders reject the classic mistakes and accept right answers."""

import math

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "08_rope_scaling.ipynb"


def _theta(dim, base):
    return (1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)).float()


def linear_times(dim, base=10000.0, factor=1.0):
    """multiplies by the factor"""
    return _theta(dim, base) * factor


def linear_squared(dim, base=10000.0, factor=1.0):
    """divides by factor²"""
    return _theta(dim, base) / factor**2


def linear_via_base(dim, base=10000.0, factor=1.0):
    """scales the base"""
    return _theta(dim, base * factor)


@pytest.mark.parametrize(
    "wrong, hint",
    [(linear_times, "multiplied"), (linear_squared, "factor²"), (linear_via_base, "NTK")],
)
def test_linear_grader_rejects(wrong, hint):
    assert_rejected("linear_scaled_frequencies", wrong, hint)


def ntk_inverted(base, factor, dim):
    """(d−2)/d"""
    return base * factor ** ((dim - 2) / dim)


def ntk_dropped(base, factor, dim):
    """base · factor"""
    return base * factor


def ntk_power(base, factor, dim):
    """base ** factor"""
    return base**factor


@pytest.mark.parametrize(
    "wrong, hint",
    [(ntk_inverted, "inverted"), (ntk_dropped, "dropped"), (ntk_power, "raised")],
)
def test_ntk_grader_rejects(wrong, hint):
    assert_rejected("ntk_scaled_base", wrong, hint)


def dynamic_always_on(base, factor, dim, seq_len, original_len):
    """scales below the original length too"""
    stretch = factor * seq_len / original_len - (factor - 1)
    return base * stretch ** (dim / (dim - 2)) if stretch > 0 else base * 0.5


def dynamic_static(base, factor, dim, seq_len, original_len):
    """static factor beyond L"""
    return base if seq_len <= original_len else base * factor ** (dim / (dim - 2))


def dynamic_ratio(base, factor, dim, seq_len, original_len):
    """s/L as the factor"""
    return base if seq_len <= original_len else base * (seq_len / original_len) ** (dim / (dim - 2))


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (dynamic_always_on, "below the original"),
        (dynamic_static, "full static"),
        (dynamic_ratio, "s/L"),
    ],
)
def test_dynamic_grader_rejects(wrong, hint):
    assert_rejected("dynamic_ntk_base", wrong, hint)


def _ramp(dim, base, L, beta_fast=32, beta_slow=1):
    def pair(turns):
        return dim * math.log(L / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = max(math.floor(pair(beta_fast)), 0), min(math.ceil(pair(beta_slow)), dim - 1)
    high = high + 0.001 if low == high else high
    return ((torch.arange(dim // 2) - low) / (high - low)).clamp(0, 1)


def _wrong_ramp(
    dim,
    base,
    L,
    fast,
    slow,
    *,
    swap=False,
    reverse=False,
    clamp=True,
    wave=False,
    from_one=False,
    exact=False,
):
    """A learner's ramp with one mistake switched on."""
    if swap:
        fast, slow = slow, fast

    def pair(beta):
        span = beta / (2 * math.pi) if wave else L / (beta * 2 * math.pi)
        return dim * math.log(span) / (2 * math.log(base))

    lo, hi = sorted((pair(fast), pair(slow))) if wave else (pair(fast), pair(slow))
    if not exact:
        lo, hi = math.floor(lo), math.ceil(hi)
    lo, hi = max(lo, 0), min(hi, dim - 1)
    hi = hi + 0.001 if lo == hi else hi
    start = 1 if from_one else 0
    ramp = (torch.arange(start, dim // 2 + start, dtype=torch.float32) - lo) / (hi - lo)
    ramp = ramp.clamp(0, 1) if clamp else ramp
    return 1 - ramp if reverse else ramp


def _r(doc, **kw):
    def fn(dim, base, original_len, beta_fast=32, beta_slow=1):
        return _wrong_ramp(dim, base, original_len, beta_fast, beta_slow, **kw)

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_r("betas swapped", swap=True), "swapped"),
        (_r("ramp reversed", reverse=True), "ramp reversed"),
        (_r("no clamp", clamp=False), "not clamped"),
        (_r("β as a wavelength", wave=True), "wavelength"),
        (_r("indices 1 … d/2", from_one=True), "off by one"),
        (_r("no floor/ceil", exact=True), "not rounded"),
    ],
)
def test_yarn_ramp_grader_rejects(wrong, hint):
    assert_rejected("yarn_ramp", wrong, hint)


def _wrong_critical(
    d, base, L, *, rnd=math.ceil, times=2, span=None, log=None, clamp=True, slow=False
):
    x = d / 2 * (log or (lambda v: math.log(v, base)))(span(L) if span else L / (2 * math.pi))
    pairs = min(max(rnd(x), 0), d // 2) if clamp else rnd(x)
    return d - 2 * pairs if slow else times * pairs


def _c(doc, **kw):
    def fn(head_dim, base, train_len):
        return _wrong_critical(head_dim, base, train_len, **kw)

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_c("floor", rnd=math.floor), "rounded down"),
        (_c("pairs", times=1), "pairs, not dimensions"),
        (_c("log_base(L)", span=lambda L: L), "L / 2π"),
        (_c("ln", log=math.log), "natural log"),
        (_c("slow dims", slow=True), "slow dims"),
        (_c("no clamp", clamp=False), "not clamped"),
    ],
)
def test_critical_dim_grader_rejects(wrong, hint):
    assert_rejected("critical_dim", wrong, hint)


def _yarn(dim, base, factor, L, *, reverse=False, all_pairs=False, att="right"):
    theta, ramp = _theta(dim, base), _ramp(dim, base, L)
    if reverse:
        ramp = 1 - ramp
    freqs = theta / factor if all_pairs else theta * (1 - ramp) + theta / factor * ramp
    a = 0.1 * math.log(factor) + 1
    att_value = {"right": a, "missing": 1.0, "twice": a * a, "log10": 0.1 * math.log10(factor) + 1}
    return freqs, att_value[att]


def _y(doc, **kw):
    def fn(dim, base, factor, original_max_position_embeddings, beta_fast=32, beta_slow=1):
        return _yarn(dim, base, factor, original_max_position_embeddings, **kw)

    fn.__doc__ = doc
    return fn


def yarn_freqs_only(dim, base, factor, original_max_position_embeddings, beta_fast=32, beta_slow=1):
    """forgets the attention factor in the return value"""
    return _yarn(dim, base, factor, original_max_position_embeddings)[0]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_y("ramp reversed", reverse=True), "ramp reversed"),
        (_y("factor on every pair", all_pairs=True), "every pair"),
        (_y("no attention factor", att="missing"), "missing"),
        (_y("attention factor squared", att="twice"), "twice"),
        (_y("log10", att="log10"), "natural log"),
        (yarn_freqs_only, "attention factor"),
    ],
)
def test_yarn_grader_rejects(wrong, hint):
    assert_rejected("yarn_frequencies", wrong, hint)


def _llama(
    dim, base, factor, low, high, L, *, all_pairs=False, new_length=False, reverse=False, hard=False
):
    theta = _theta(dim, base)
    wavelength = 2 * math.pi / theta
    ref_len = factor * L if new_length else L
    if all_pairs:
        return theta / factor
    if hard:
        return torch.where(wavelength > L / low, theta / factor, theta)
    s = ((ref_len / wavelength - low) / (high - low)).clamp(0, 1)
    if reverse:
        return theta * (1 - s) + theta / factor * s
    return theta / factor * (1 - s) + theta * s


def _l(doc, **kw):
    def fn(dim, base, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings):
        return _llama(
            dim,
            base,
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
            **kw,
        )

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_l("factor on every pair", all_pairs=True), "every pair"),
        (_l("compared with the new length", new_length=True), "new length"),
        (_l("bands reversed", reverse=True), "reversed"),
        (_l("no smooth band", hard=True), "hard cut"),
    ],
)
def test_llama3_grader_rejects(wrong, hint):
    assert_rejected("llama3_frequencies", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    for name in (
        "linear_scaled_frequencies",
        "ntk_scaled_base",
        "dynamic_ntk_base",
        "yarn_frequencies",
        "llama3_frequencies",
        "yarn_ramp",
        "critical_dim",
    ):
        assert_accepted(name, ns[name])
