"""Right answers to notebook 08's YaRN ramp and critical dimension, written as people write
them: Hugging Face's _compute_yarn_parameters, the YaRN authors' find_correction_range /
linear_ramp_mask, numpy; Liu et al.'s formula, a loop over periods, numpy. None imports posenc.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# --- the YaRN ramp: γ_i, 1 = interpolate --------------------------------------------------


def ramp_hf(dim, base, original_len, beta_fast=32, beta_slow=1):
    """Hugging Face's find_correction_range (truncate=True) and linear_ramp_factor."""

    def find_correction_dim(num_rotations, dim, base, max_position_embeddings):
        return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (
            2 * math.log(base)
        )

    def find_correction_range(low_rot, high_rot, dim, base, max_position_embeddings, truncate):
        low = find_correction_dim(low_rot, dim, base, max_position_embeddings)
        high = find_correction_dim(high_rot, dim, base, max_position_embeddings)
        if truncate:
            low = math.floor(low)
            high = math.ceil(high)
        return max(low, 0), min(high, dim - 1)

    def linear_ramp_factor(min, max, dim):  # noqa: A002 (HF's names)
        if min == max:
            max += 0.001  # Prevent singularity
        linear_func = (torch.arange(dim, dtype=torch.float32) - min) / (max - min)
        return torch.clamp(linear_func, 0, 1)

    low, high = find_correction_range(beta_fast, beta_slow, dim, base, original_len, True)
    inv_freq_extrapolation_factor = 1 - linear_ramp_factor(low, high, dim // 2)
    return 1 - inv_freq_extrapolation_factor


def ramp_authors(dim, base, original_len, beta_fast=32, beta_slow=1):
    """The YaRN authors' _yarn_find_correction_range and _yarn_linear_ramp_mask."""

    def _yarn_find_correction_dim(num_rotations, dim, base=10000, max_position_embeddings=2048):
        return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (
            2 * math.log(base)
        )

    def _yarn_find_correction_range(low_rot, high_rot, dim, base, max_position_embeddings):
        low = math.floor(_yarn_find_correction_dim(low_rot, dim, base, max_position_embeddings))
        high = math.ceil(_yarn_find_correction_dim(high_rot, dim, base, max_position_embeddings))
        return max(low, 0), min(high, dim - 1)

    def _yarn_linear_ramp_mask(min, max, dim):  # noqa: A002 (the authors' names)
        if min == max:
            max += 0.001
        linear_func = (torch.arange(dim, dtype=torch.float32) - min) / (max - min)
        return torch.clamp(linear_func, 0, 1)

    low, high = _yarn_find_correction_range(beta_fast, beta_slow, dim, base, original_len)
    inv_freq_mask = 1 - _yarn_linear_ramp_mask(low, high, dim // 2)  # 1 = keep θ
    return 1 - inv_freq_mask


def ramp_numpy(dim, base, original_len, beta_fast=32, beta_slow=1):
    """numpy, float64: the pair index where the turn count r = L / λ crosses each β."""
    turns = np.array([beta_fast, beta_slow], dtype=np.float64)
    i = dim * np.log(original_len / (2 * np.pi * turns)) / (2 * np.log(base))
    low, high = max(np.floor(i[0]), 0.0), min(np.ceil(i[1]), dim - 1.0)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dim // 2) - low) / (high - low), 0.0, 1.0)
    return torch.from_numpy(ramp)


# --- the critical dimension (Liu et al., 2023) -------------------------------------------


def critical_liu(head_dim, base, train_len):
    """d_extra = 2⌈(d/2)·log_base(L/2π)⌉, clamped to the head."""
    pairs = math.ceil(head_dim / 2 * math.log(train_len / (2 * math.pi), base))
    return 2 * min(max(pairs, 0), head_dim // 2)


def critical_loop(head_dim, base, train_len):
    """Two dims for every pair whose period 2π·base^(2i/d) fits in the training length."""
    fits = 0
    for i in range(head_dim // 2):
        period = 2 * math.pi * base ** (2 * i / head_dim)
        if period <= train_len:
            fits += 1
    return 2 * fits


def critical_numpy(head_dim, base, train_len):
    """numpy: wavelengths of all pairs at once, in float64."""
    theta = base ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    return int(2 * np.count_nonzero(2 * np.pi / theta <= train_len))
