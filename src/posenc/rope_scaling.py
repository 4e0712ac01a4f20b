"""Stretching RoPE past its training length: PI, NTK-aware, dynamic NTK, YaRN, Llama 3.

Each method changes the RoPE frequencies θ_i = base^(−2i/d) (and YaRN also the attention
temperature). The ``scaling`` dicts use the keys of Hugging Face transformers'
``rope_scaling`` / ``rope_parameters``, so a config maps one to one:

* ``{"rope_type": "linear", "factor": f}``: Position Interpolation (Chen et al., 2023):
  θ_i / f, i.e. positions squeezed by f.
* ``{"rope_type": "ntk", "factor": f}``: NTK-aware base change (bloc97, 2023):
  base' = base · f^(d/(d−2)); the fastest pair is unchanged, the slowest is divided by f.
* ``{"rope_type": "dynamic", "factor": f, "original_max_position_embeddings": L}``: dynamic
  NTK: for a current length s > L, base' = base · (f·s/L − (f − 1))^(d/(d−2)); plain RoPE
  for s ≤ L.
* ``{"rope_type": "yarn", "factor": f, "original_max_position_embeddings": L,
  "beta_fast": 32, "beta_slow": 1, "attention_factor": optional}``: YaRN (Peng et al., 2023):
  a per-pair ramp between interpolation (slow pairs) and extrapolation (fast pairs), and an
  attention factor 0.1·ln f + 1 that multiplies cos and sin.
* ``{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
  "original_max_position_embeddings": 8192}``: Llama 3.1's wavelength bands.

All return ``(inverse frequencies (d/2,) float32, attention factor)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posenc.rope import rope_frequencies

REQUIRED = {
    "linear": ("factor",),
    "ntk": ("factor",),
    "dynamic": ("factor", "original_max_position_embeddings"),
    "yarn": ("factor", "original_max_position_embeddings"),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


def _validate(scaling: dict) -> str:
    rope_type = scaling.get("rope_type", scaling.get("type"))
    if rope_type not in REQUIRED:
        raise ValueError(
            f"scaling['rope_type'] must be one of {sorted(REQUIRED)}, got {rope_type!r}"
        )
    for key in REQUIRED[rope_type]:
        if key not in scaling:
            raise ValueError(f"scaling[{key!r}] is required for rope_type {rope_type!r}")
    if not scaling["factor"] >= 1:
        raise ValueError(f"scaling['factor'] must be >= 1, got {scaling['factor']!r}")
    return rope_type


def ntk_scaled_base(base: float, factor: float, dim: int) -> float:
    """base · factor^(d/(d−2)): the base at which the slowest pair turns ``factor`` times slower
    while the fastest pair (i = 0) is untouched."""
    return base * factor ** (dim / (dim - 2))


def yarn_correction_range(
    dim: int, base: float, original_len: int, beta_fast: float = 32, beta_slow: float = 1
) -> tuple[int, int]:
    """Pair indices (low, high) of YaRN's ramp. Pair i completes L·θ_i / 2π turns over the
    original length L; pairs turning more than beta_fast times are kept (extrapolated),
    fewer than beta_slow times are interpolated, the ones between are blended."""

    def pair_with_turns(turns: float) -> float:
        return dim * math.log(original_len / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = math.floor(pair_with_turns(beta_fast)), math.ceil(pair_with_turns(beta_slow))
    return max(low, 0), min(high, dim - 1)


def yarn_ramp(
    dim: int, base: float, original_len: int, beta_fast: float = 32, beta_slow: float = 1
) -> Tensor:
    """γ_i in [0, 1] per pair: 0 = keep the original frequency, 1 = divide it by the factor."""
    low, high = yarn_correction_range(dim, base, original_len, beta_fast, beta_slow)
    high = high + 0.001 if low == high else high
    return ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)


def yarn_attention_factor(factor: float) -> float:
    """0.1 · ln(factor) + 1 (1 for factor ≤ 1): YaRN's temperature on the attention logits,
    applied by scaling cos and sin (so q·k scales by its square)."""
    return 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0


def linear_scaled_frequencies(dim: int, base: float = 10000.0, factor: float = 1.0) -> Tensor:
    """Position Interpolation: θ_i / factor (position m is read as m / factor)."""
    return rope_frequencies(dim, base) / factor


def dynamic_ntk_base(
    base: float, factor: float, dim: int, seq_len: int, original_len: int
) -> float:
    """Dynamic NTK: the base for the current length; unchanged while seq_len ≤ original_len,
    then base · (factor · seq_len / original_len − (factor − 1))^(d/(d−2))."""
    if seq_len <= original_len:
        return base
    return ntk_scaled_base(base, factor * seq_len / original_len - (factor - 1), dim)


def yarn_frequencies(
    dim: int,
    base: float = 10000.0,
    factor: float = 1.0,
    original_max_position_embeddings: int = 2048,
    beta_fast: float = 32,
    beta_slow: float = 1,
) -> tuple[Tensor, float]:
    """YaRN: θ_i' = θ_i · (1 − γ_i) + (θ_i / factor) · γ_i with the ramp γ of
    :func:`yarn_ramp` (0 for fast pairs, 1 for slow ones), and the attention factor
    0.1 · ln(factor) + 1."""
    theta = rope_frequencies(dim, base)
    ramp = yarn_ramp(dim, base, original_max_position_embeddings, beta_fast, beta_slow)
    return theta * (1 - ramp) + theta / factor * ramp, yarn_attention_factor(factor)


def llama3_frequencies(
    dim: int,
    base: float = 500000.0,
    factor: float = 8.0,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
    original_max_position_embeddings: int = 8192,
) -> Tensor:
    """Llama 3.1: pairs whose wavelength 2π/θ exceeds L/low_freq_factor are interpolated by
    the factor, those shorter than L/high_freq_factor are kept, and the band between is
    blended with s = (L/wavelength − low) / (high − low):  θ' = (1 − s)·θ/factor + s·θ."""
    theta = rope_frequencies(dim, base)
    wavelength = 2 * math.pi / theta
    smooth = (original_max_position_embeddings / wavelength - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    smooth = smooth.clamp(0, 1)  # 0: interpolate (long waves), 1: keep (short waves)
    return theta / factor * (1 - smooth) + theta * smooth


def rope_scaled_frequencies(
    dim: int, base: float = 10000.0, scaling: dict | None = None, *, seq_len: int | None = None
) -> tuple[Tensor, float]:
    """Inverse frequencies (dim // 2,) and attention factor for a ``scaling`` dict (or None)."""
    theta = rope_frequencies(dim, base)
    if scaling is None:
        return theta, 1.0
    rope_type, f = _validate(scaling), float(scaling["factor"])
    if rope_type == "linear":
        return linear_scaled_frequencies(dim, base, f), 1.0
    if rope_type == "ntk":
        return rope_frequencies(dim, ntk_scaled_base(base, f, dim)), 1.0
    original = scaling["original_max_position_embeddings"]
    if rope_type == "dynamic":
        if seq_len is None:
            return theta, 1.0
        return rope_frequencies(dim, dynamic_ntk_base(base, f, dim, seq_len, original)), 1.0
    if rope_type == "yarn":
        scaled, factor = yarn_frequencies(
            dim, base, f, original, scaling.get("beta_fast", 32), scaling.get("beta_slow", 1)
        )
        override = scaling.get("attention_factor")
        return scaled, float(factor if override is None else override)
    return llama3_frequencies(
        dim, base, f, scaling["low_freq_factor"], scaling["high_freq_factor"], original
    ), 1.0
