"""Graders for notebook 08 · Stretching RoPE to long context."""

from __future__ import annotations

import math

import torch

from posenc.grading.core import (
    Case,
    Mismatch,
    Mistakes,
    allowed_error,
    call,
    exercise,
    expect_close,
    expect_number,
)

NOTEBOOK = "08_rope_scaling"
OFF_LIMITS = (
    "posenc.rope_scaling.yarn_ramp",
    "posenc.rope_scaling.yarn_correction_range",
    "posenc.rope_scaling.critical_dim",
    "posenc.rope.slow_pair_count",
    "posenc.rope_scaling.linear_scaled_frequencies",
    "posenc.rope_scaling.ntk_scaled_base",
    "posenc.rope_scaling.dynamic_ntk_base",
    "posenc.rope_scaling.yarn_frequencies",
    "posenc.rope_scaling.yarn_attention_factor",
    "posenc.rope_scaling.llama3_frequencies",
    "posenc.rope_scaling.rope_scaled_frequencies",
)


# --- float64 truths, independent of the library -------------------------------------------


def rope_frequencies(dim: int, base: float = 10000.0) -> torch.Tensor:
    """θ_i = base^(−2i/d) in float64.  (dim/2,)"""
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def frequency_allowed(theta: torch.Tensor, base: float) -> torch.Tensor:
    """The rule for base^(−2i/d) in float32 (ln(base)·u from the exponent), per element."""
    return allowed_error((3 + math.log(base)) * theta)


def number_rel_tol(value: float) -> float:
    """A float32 power base·f^e is off by ≤ (2 + |ln value|)·u relative."""
    return allowed_error(2 + abs(math.log(abs(value))))


def ntk_scaled_base(base: float, factor: float, dim: int) -> float:
    return base * factor ** (dim / (dim - 2))


def dynamic_ntk_base(base, factor, dim, seq_len, original_len) -> float:
    if seq_len <= original_len:
        return base
    return ntk_scaled_base(base, factor * seq_len / original_len - (factor - 1), dim)


def pair_with_turns(turns, dim, base, original_len) -> float:
    """i(r) = d·ln(L / (2π r)) / (2 ln base): the (fractional) pair turning r times in L."""
    return dim * math.log(original_len / (turns * 2 * math.pi)) / (2 * math.log(base))


def ramp_between(low: float, high: float, pairs: int, clamp: bool = True) -> torch.Tensor:
    """(i − low) / (high − low) per pair, clamped to [0, 1]; HF's guard for low == high."""
    high = high + 0.001 if low == high else high
    ramp = (torch.arange(pairs, dtype=torch.float64) - low) / (high - low)
    return ramp.clamp(0, 1) if clamp else ramp


def yarn_range(dim, base, original_len, beta_fast=32, beta_slow=1) -> tuple[int, int]:
    """find_correction_range with truncation: (⌊i(β_fast)⌋ ≥ 0, ⌈i(β_slow)⌉ ≤ d − 1)."""
    low = math.floor(pair_with_turns(beta_fast, dim, base, original_len))
    high = math.ceil(pair_with_turns(beta_slow, dim, base, original_len))
    return max(low, 0), min(high, dim - 1)


def yarn_ramp(dim, base, original_len, beta_fast=32, beta_slow=1) -> torch.Tensor:
    """YaRN's γ_i (1 = interpolate), as the YaRN authors' find_correction_range and
    linear_ramp_mask (and HF's with truncate=True) compute it, in float64."""
    return ramp_between(*yarn_range(dim, base, original_len, beta_fast, beta_slow), dim // 2)


def critical_dim(head_dim: int, base: float, train_len: int) -> int:
    """2⌈(d/2)·log_base(L/2π)⌉ clamped to [0, d] (Liu et al., 2023)."""
    pairs = math.ceil(head_dim / 2 * math.log(train_len / (2 * math.pi)) / math.log(base))
    return 2 * min(max(pairs, 0), head_dim // 2)


def yarn_truth(dim, base, factor, original_len) -> tuple[torch.Tensor, float]:
    theta, ramp = rope_frequencies(dim, base), yarn_ramp(dim, base, original_len)
    att = 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0
    return theta * (1 - ramp) + theta / factor * ramp, att


def _tensor_case(label, args, truth, allowed, mistakes) -> Case:
    def run(fn):
        out = call(fn, *args)
        if isinstance(out, tuple):
            raise Mismatch(f"{label}: returned a tuple; return the frequencies only", specific=True)
        expect_close(out, truth, label, allowed, mistakes, dtype=None)

    return Case(label, run)


def _exact_case(label, args, expected: int, wrong: dict[str, float]) -> Case:
    def run(fn):
        expect_number(call(fn, *args), expected, label, wrong, rel_tol=0.0, abs_tol=1e-9)

    return Case(label, run)


@exercise("critical_dim", NOTEBOOK, OFF_LIMITS)
def critical_dim_cases() -> list[Case]:
    cases = []
    for d, base, L in [
        (128, 10000.0, 4096),
        (32, 10.0, 32),
        (128, 500000.0, 8192),
        (64, 10000.0, 2048),
        (128, 1000000.0, 32768),
        (32, 10000.0, 4),
        (16, 10.0, 1_000_000),
    ]:
        x = d / 2 * math.log(L / (2 * math.pi)) / math.log(base)
        wrong = {
            "rounded down: the first ⌈(d/2)·log_base(L/2π)⌉ pairs complete a turn in L": 2
            * min(max(math.floor(x), 0), d // 2),
            "counted pairs, not dimensions: d_extra = 2 × the pairs": min(
                max(math.ceil(x), 0), d // 2
            ),
            "log_base(L), not log_base(L / 2π): a pair's period is 2π / θ_i": 2
            * min(max(math.ceil(d / 2 * math.log(L) / math.log(base)), 0), d // 2),
            "natural log: log_base(x) = ln(x) / ln(base)": 2
            * min(max(math.ceil(d / 2 * math.log(L / (2 * math.pi))), 0), d // 2),
            "counted the slow dims (periods beyond L); d_extra counts the ones within L": d
            - critical_dim(d, base, L),
            "not clamped to [0, head_dim]": 2 * math.ceil(x),
        }
        expected = critical_dim(d, base, L)
        label = f"head_dim {d}, base {base:g}, L {L}"
        cases.append(_exact_case(label, (d, base, L), expected, wrong))
    return cases


def _linear_mistakes(dim: int, base: float, f: float) -> Mistakes:
    theta = rope_frequencies(dim, base)
    return Mistakes(
        {
            "multiplied by the factor: PI slows every rotation, θ_i / factor": lambda: theta * f,
            "divided by factor²: positions are squeezed once, by the factor": lambda: theta / f**2,
            "the factor changed the base instead (that is NTK-aware scaling, not PI)": lambda: (
                rope_frequencies(dim, base * f)
            ),
        }
    )


@exercise("linear_scaled_frequencies", NOTEBOOK, OFF_LIMITS)
def linear_cases() -> list[Case]:
    cases = []
    for dim, base, f in [
        (8, 10000.0, 2.0),
        (64, 10000.0, 4.0),
        (128, 500000.0, 8.0),
        (32, 100.0, 1.0),
        (16, 10000.0, 16.0),
    ]:
        mistakes = _linear_mistakes(dim, base, f)
        truth = rope_frequencies(dim, base) / f
        label = f"dim {dim}, base {base:g}, factor {f:g}"
        allowed = frequency_allowed(truth, base)
        cases.append(_tensor_case(label, (dim, base, f), truth, allowed, mistakes))
    return cases


def _float_case(label, args, expected, wrong: dict[str, float]) -> Case:
    def run(fn):
        expect_number(call(fn, *args), expected, label, wrong, rel_tol=number_rel_tol(expected))

    return Case(label, run)


@exercise("ntk_scaled_base", NOTEBOOK, OFF_LIMITS)
def ntk_cases() -> list[Case]:
    cases = []
    for base, f, dim in [
        (10000.0, 2.0, 128),
        (10000.0, 8.0, 64),
        (500000.0, 4.0, 128),
        (10000.0, 16.0, 32),
        (10000.0, 1.0, 128),
    ]:
        wrong = {
            "exponent inverted: it is d/(d−2), which makes the slowest pair exactly factor× "
            "slower": base * f ** ((dim - 2) / dim),
            "exponent dropped: base · factor^(d/(d−2)), not base · factor": base * f,
            "raised the base to the factor; multiply it by factor^(d/(d−2))": base**f,
        }
        expected = ntk_scaled_base(base, f, dim)
        cases.append(
            _float_case(
                f"base {base:g}, factor {f:g}, dim {dim}",
                (base, f, dim),
                expected,
                wrong,  # expect_number skips mistakes that give the right value here
            )
        )
    return cases


@exercise("dynamic_ntk_base", NOTEBOOK, OFF_LIMITS)
def dynamic_cases() -> list[Case]:
    cases = []
    for base, f, dim, s, L in [
        (10000.0, 4.0, 128, 2048, 4096),
        (10000.0, 4.0, 128, 4096, 4096),
        (10000.0, 4.0, 128, 8192, 4096),
        (10000.0, 2.0, 64, 16384, 4096),
        (500000.0, 8.0, 128, 100, 8192),
        (10000.0, 8.0, 32, 9000, 1000),
        (10000.0, 2.0, 64, 3000, 4096),
    ]:
        stretch = f * s / L - (f - 1)  # can be ≤ 0 below L, where the formula has no meaning
        formula = ntk_scaled_base(base, stretch, dim) if stretch > 0 else float("nan")
        wrong = {
            "dynamic scaling is active below the original length: keep the base while "
            "seq_len ≤ original length": formula,
            "used the full static factor; the dynamic factor grows with the length, "
            "f·s/L − (f − 1)": ntk_scaled_base(base, f, dim),
            "used s/L as the factor; it is f·s/L − (f − 1)": ntk_scaled_base(base, s / L, dim),
        }
        expected = dynamic_ntk_base(base, f, dim, s, L)
        cases.append(
            _float_case(
                f"seq_len {s}, original {L}, factor {f:g}",
                (base, f, dim, s, L),
                expected,
                wrong,  # expect_number skips mistakes that give the right value here
            )
        )
    return cases


def _ramp_mistakes(dim, base, L, fast, slow) -> Mistakes:
    low, high = yarn_range(dim, base, L, fast, slow)
    pairs = dim // 2
    swapped = yarn_range(dim, base, L, slow, fast)  # low from β_slow: a falling ramp
    exact = (
        max(pair_with_turns(fast, dim, base, L), 0),
        min(pair_with_turns(slow, dim, base, L), dim - 1),
    )

    def as_wavelength(beta):  # β read as a wavelength (positions), not as turns in L
        return dim * math.log(beta / (2 * math.pi)) / (2 * math.log(base))

    wave = sorted((as_wavelength(slow), as_wavelength(fast)))
    shifted = ((torch.arange(1, pairs + 1, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    return Mistakes(
        {
            "β_fast and β_slow swapped: β_fast (many turns, fast pairs) gives the low end of "
            "the ramp, β_slow (one turn) the high end": lambda: ramp_between(*swapped, pairs),
            "ramp reversed: γ = 0 (keep θ) for the fast pairs below the low end, γ = 1 "
            "(interpolate) for the slow ones above the high end": lambda: (
                1 - ramp_between(low, high, pairs)
            ),
            "ramp not clamped: clamp (i − low) / (high − low) to [0, 1]": lambda: ramp_between(
                low, high, pairs, clamp=False
            ),
            "β read as a wavelength: β counts turns over L, so the bound pair has wavelength "
            "L / β, i(β) = d·ln(L / (2π β)) / (2 ln base)": lambda: ramp_between(
                max(math.floor(wave[0]), 0), min(math.ceil(wave[1]), dim - 1), pairs
            ),
            "pair indices off by one: the ramp runs over i = 0 … d/2 − 1": lambda: shifted,
            "bounds not rounded: YaRN floors the low end and ceils the high end (the authors' "
            "code, and Hugging Face's default truncate=True)": lambda: ramp_between(*exact, pairs),
        }
    )


def _ramp_case(label, dim, base, L, fast=32.0, slow=1.0) -> Case:
    truth = yarn_ramp(dim, base, L, fast, slow)
    mistakes = _ramp_mistakes(dim, base, L, fast, slow)
    # a float32 (i − low) / (high − low) of a number ≤ 1 rounds by a few units
    allowed = allowed_error(torch.full_like(truth, 4.0))
    return _tensor_case(label, (dim, base, L, fast, slow), truth, allowed, mistakes)


@exercise("yarn_ramp", NOTEBOOK, OFF_LIMITS)
def yarn_ramp_cases() -> list[Case]:
    return [
        _ramp_case("Llama 2: dim 128, base 10000, L 4096", 128, 10000.0, 4096),
        _ramp_case("dim 64, base 10000, L 2048", 64, 10000.0, 2048),
        _ramp_case("dim 128, base 500000, L 8192", 128, 500000.0, 8192),
        _ramp_case("our tiny model: dim 32, base 10, L 32", 32, 10.0, 32),
        _ramp_case("dim 64, base 10000, L 4096, β_fast 16, β_slow 2", 64, 10000.0, 4096, 16, 2),
    ]


def _yarn_case(label, dim, base, f, L) -> Case:
    theta = rope_frequencies(dim, base)
    ramp = yarn_ramp(dim, base, L)
    expected, factor = yarn_truth(dim, base, f, L)

    def run(fn):
        out = call(fn, dim, base, f, L)
        if not isinstance(out, tuple) or len(out) != 2:
            raise Mismatch(
                f"{label}: return (inverse frequencies, attention factor)", specific=True
            )
        freqs, att = out
        mistakes = Mistakes(
            {
                "ramp reversed: the fast pairs (many turns in L) keep their frequency and the slow "
                "ones are interpolated": lambda: theta * ramp + theta / f * (1 - ramp),
                "the factor was applied to every pair (that is PI); YaRN interpolates only the "
                "slow ones": lambda: theta / f,
            }
        )
        allowed = frequency_allowed(theta, base)
        expect_close(freqs, expected, label, allowed, mistakes, dtype=None)
        wrong = {
            "attention factor missing: YaRN scales the logits by 0.1·ln(factor) + 1": 1.0,
            "attention factor applied twice (squared); it multiplies cos and sin once": factor**2,
            "attention factor 0.1·log10(factor) + 1; use the natural log": 0.1 * math.log10(f) + 1,
        }
        rel_tol = number_rel_tol(factor)
        expect_number(att, factor, label, wrong, rel_tol=rel_tol, what="attention factor")

    return Case(label, run)


@exercise("yarn_frequencies", NOTEBOOK, OFF_LIMITS)
def yarn_cases() -> list[Case]:
    return [
        _yarn_case(
            "dim 128, base 10000, L 4096, factor 16 (YaRN paper setting)", 128, 10000.0, 16.0, 4096
        ),
        _yarn_case("dim 64, base 10000, L 2048, factor 4", 64, 10000.0, 4.0, 2048),
        _yarn_case("dim 128, base 500000, L 8192, factor 8", 128, 500000.0, 8.0, 8192),
        _yarn_case("dim 32, base 10000, L 32, factor 2 (our tiny model)", 32, 10000.0, 2.0, 32),
        _yarn_case("factor 1 changes nothing", 64, 10000.0, 1.0, 4096),
    ]


def _llama3_case(label, dim, base, f, low, high, L) -> Case:
    theta = rope_frequencies(dim, base)
    wavelength = 2 * math.pi / theta

    def smooth_from(length):
        return ((length / wavelength - low) / (high - low)).clamp(0, 1)

    s_new = smooth_from(f * L)
    s = smooth_from(L)
    truth = theta / f * (1 - s) + theta * s  # s = 0: interpolate (long waves), 1: keep
    # in the band, s = (L/λ − low)/(high − low) carries L·θ/2π's rounding into the blend
    band = ((s > 0) & (s < 1)).double() * L / wavelength / (high - low)
    allowed = allowed_error((3 + math.log(base) + band) * theta)
    mistakes = Mistakes(
        {
            "the factor was applied to every pair; Llama 3 keeps the short wavelengths": lambda: (
                theta / f
            ),
            "wavelengths compared with the new length (factor × L); compare them with the original "
            "context length": lambda: theta / f * (1 - s_new) + theta * s_new,
            "bands reversed: long wavelengths (slow pairs) are the ones interpolated": lambda: (
                theta * (1 - s) + theta / f * s
            ),
            "hard cut without the smooth middle band": lambda: torch.where(
                wavelength > L / low, theta / f, theta
            ),
        }
    )
    return _tensor_case(label, (dim, base, f, low, high, L), truth, allowed, mistakes)


@exercise("llama3_frequencies", NOTEBOOK, OFF_LIMITS)
def llama3_cases() -> list[Case]:
    return [
        _llama3_case(
            "Llama 3.1 setting: dim 128, base 500000, factor 8, L 8192",
            128,
            500000.0,
            8.0,
            1.0,
            4.0,
            8192,
        ),
        _llama3_case("dim 64, base 10000, factor 4, L 2048", 64, 10000.0, 4.0, 1.0, 4.0, 2048),
        _llama3_case(
            "dim 128, base 10000, factor 16, low 2, high 8, L 4096",
            128,
            10000.0,
            16.0,
            2.0,
            8.0,
            4096,
        ),
        _llama3_case(
            "dim 32, base 10000, factor 2, L 32 (our tiny model)", 32, 10000.0, 2.0, 1.0, 4.0, 32
        ),
        _llama3_case("factor 1 changes nothing", 64, 500000.0, 1.0, 1.0, 4.0, 8192),
    ]
