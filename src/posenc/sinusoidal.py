"""Sinusoidal position encoding (Vaswani et al., 2017, section 3.5).

    PE[p, 2i]   = sin(p / base^(2i/d))
    PE[p, 2i+1] = cos(p / base^(2i/d))         i = 0 … d/2 − 1

The paper's *interleaved* layout: sine and cosine of one frequency sit side by side. Some
libraries concatenate [all sines | all cosines] instead; that is the same table with its
columns permuted (:func:`interleaved_to_concatenated_permutation`).

Angles are computed in float64 and only then cast, so even at p = 100 000 the float32 table
is correctly rounded (an angle computed in float32 there is off by about 1e-3 rad).
"""

from __future__ import annotations

import torch
from torch import Tensor

from posenc.attention import PositionScheme


def _check_args(dim: int, base: float) -> None:
    if not isinstance(dim, int) or dim <= 0 or dim % 2:
        raise ValueError(
            f"dim must be a positive even int (one sin and one cos per pair), got {dim!r}"
        )
    if not base > 1:
        raise ValueError(f"base must be > 1 (wavelengths grow from 2π to base·2π), got {base!r}")


def sinusoidal_frequencies(dim: int, base: float = 10000.0) -> Tensor:
    """ω_i = base^(−2i/d) for i = 0 … d/2 − 1, in float64.  Returns (dim // 2,)."""
    _check_args(dim, base)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # 0, 2, 4, …, d − 2
    return base ** (-two_i / dim)


def sinusoidal_encoding(
    seq_len: int,
    dim: int,
    base: float = 10000.0,
    *,
    dtype: torch.dtype = torch.float32,
    device=None,
) -> Tensor:
    """The table PE of shape (seq_len, dim), interleaved: sin at even, cos at odd columns."""
    if not isinstance(seq_len, int) or seq_len < 0:
        raise ValueError(f"seq_len must be an int >= 0, got {seq_len!r}")
    positions = torch.arange(seq_len, dtype=torch.float64)  # (seq_len,)
    return _encode(positions, dim, base).to(dtype=dtype, device=device)


def _encode(positions: Tensor, dim: int, base: float) -> Tensor:
    """Rows PE[p] for the given positions, in float64.  (n,) -> (n, dim)."""
    omega = sinusoidal_frequencies(dim, base)  # (dim/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (n, dim/2): p · ω_i
    pe = torch.empty(len(positions), dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)  # PE[p, 2i]
    pe[:, 1::2] = torch.cos(angles)  # PE[p, 2i+1]
    return pe


def sinusoidal_offset_matrix(offset: int, dim: int, base: float = 10000.0) -> Tensor:
    """The fixed linear map M_k with PE[p + k] = M_k @ PE[p] for every p.  Returns (dim, dim).

    From sin(a + b) = sin a cos b + cos a sin b and cos(a + b) = cos a cos b − sin a sin b,
    each (sin, cos) pair is rotated by the angle k·ω_i:

        [sin((p+k)ω)]   [ cos kω   sin kω ] [sin pω]
        [cos((p+k)ω)] = [−sin kω   cos kω ] [cos pω]

    M_k is block-diagonal with these 2×2 blocks; it does not depend on p.
    """
    if not isinstance(offset, int):
        raise ValueError(f"offset must be an int, got {offset!r}")
    angle = offset * sinusoidal_frequencies(dim, base)  # (dim/2,)
    cos, sin = torch.cos(angle), torch.sin(angle)
    m = torch.zeros(dim, dim, dtype=torch.float64)
    even = torch.arange(0, dim, 2)
    m[even, even] = cos
    m[even, even + 1] = sin
    m[even + 1, even] = -sin
    m[even + 1, even + 1] = cos
    return m.to(torch.float32)


def relative_dot_product_curve(dim: int, max_offset: int, base: float = 10000.0) -> Tensor:
    """curve[k] = PE[p]·PE[p+k] for k = 0 … max_offset; the same for every p.

    Each (sin, cos) pair contributes sin(pω)sin((p+k)ω) + cos(pω)cos((p+k)ω) = cos(kω), so

        PE[p]·PE[p+k] = Σ_i cos(k ω_i)          (= d/2 at k = 0)

    Returns (max_offset + 1,) float32.
    """
    if not isinstance(max_offset, int) or max_offset < 0:
        raise ValueError(f"max_offset must be an int >= 0, got {max_offset!r}")
    k = torch.arange(max_offset + 1, dtype=torch.float64)[:, None]  # (K, 1)
    return torch.cos(k * sinusoidal_frequencies(dim, base)).sum(-1).float()  # (K,)


def interleaved_to_concatenated_permutation(dim: int) -> Tensor:
    """Column order that turns the interleaved table into [sin … | cos …]: PE[:, perm]."""
    _check_args(dim, 2.0)
    return torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])


class SinusoidalPositionalEncoding(PositionScheme):
    """Adds the fixed sinusoidal table to the token embeddings (no parameters)."""

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        _check_args(dim, base)
        self.dim, self.base = dim, base

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        """x: (..., seq, dim); positions: (seq,) non-negative ints."""
        pe = _encode(positions.cpu(), self.dim, self.base)  # (seq, dim)
        return x + pe.to(dtype=x.dtype, device=x.device)


__all__ = [
    "SinusoidalPositionalEncoding",
    "interleaved_to_concatenated_permutation",
    "relative_dot_product_curve",
    "sinusoidal_encoding",
    "sinusoidal_frequencies",
    "sinusoidal_offset_matrix",
]
