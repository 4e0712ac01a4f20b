"""xPos (Sun et al., 2022, "A Length-Extrapolatable Transformer"): RoPE with a decay per pair.

On top of RoPE's rotation, the query at position m is multiplied per pair by ζ_i^{m/γ} and the
key at n by ζ_i^{−n/γ}, so their score gains the factor

    ζ_i^{(m − n)/γ},    ζ_i = (2i/d + 0.4) / 1.4  ∈ (0.29, 1),    γ = scale_base = 512,

an explicit, monotone decay with distance that is strongest for the fast pairs (small i).
"""

from __future__ import annotations

import torch
from torch import Tensor

from posenc.rope import RotaryEmbedding


def xpos_scales(positions: Tensor, dim: int, scale_base: float = 512.0) -> Tensor:
    """ζ_i^{m / scale_base} for each position m and pair i: (*positions.shape, dim // 2)."""
    if scale_base <= 0:
        raise ValueError(f"scale_base must be > 0, got {scale_base}")
    zeta = (torch.arange(0, dim, 2, dtype=torch.float64) + 0.4 * dim) / (1.4 * dim)  # (d/2,)
    return (zeta ** (positions.double()[..., None] / scale_base)).float()


class XPos(RotaryEmbedding):
    """RoPE (half layout) followed by xPos's scaling: q by ζ^{m/γ}, k by ζ^{−n/γ}."""

    def __init__(self, head_dim: int, base: float = 10000.0, *, scale_base: float = 512.0):
        super().__init__(head_dim, base)
        self.scale_base = scale_base

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        q, k = super().rotate(q, k, positions)
        scale = xpos_scales(positions, k.shape[-1], self.scale_base)  # (seq, d/2)
        scale = torch.cat([scale, scale], dim=-1).to(q.dtype)  # half layout: pair i at i, i + d/2
        return q * scale[-q.shape[-2] :], k / scale
