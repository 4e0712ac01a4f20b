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

import math
import numbers

import torch
from torch import Tensor

from posenc.attention import PositionScheme, check_float_tensor, check_int, check_int_tensor


def _check_args(dim: int, base: float) -> None:
    if check_int("dim", dim, 1) % 2:
        raise ValueError(
            f"dim must be a positive even int (one sin and one cos per pair), got {dim!r}"
        )
    if isinstance(base, bool) or not isinstance(base, numbers.Real):
        raise TypeError(f"base must be a real number > 1, got {type(base).__name__}")
    if not (math.isfinite(base) and base > 1):
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
    """The table PE of shape (seq_len, dim), interleaved: sin at even, cos at odd columns.

    Computed in float64, then cast to ``dtype`` (a floating dtype)."""
    seq_len = check_int("seq_len", seq_len)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(
            f"dtype must be a floating torch.dtype (float16, bfloat16, float32, float64), got "
            f"{dtype!r}: an integer table would truncate every value"
        )
    positions = torch.arange(seq_len, dtype=torch.float64)  # (seq_len,)
    return _encode(positions, dim, base).to(dtype=dtype, device=device)


def _encode(positions: Tensor, dim: int, base: float) -> Tensor:
    """Rows PE[p] for the given positions, in float64.  (n,) -> (n, dim)."""
    omega = sinusoidal_frequencies(dim, base).to(positions.device)  # (dim/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (n, dim/2): p · ω_i
    pe = torch.empty(len(positions), dim, dtype=torch.float64, device=positions.device)
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
    offset = check_int("offset", offset, minimum=None)
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
    max_offset = check_int("max_offset", max_offset)
    k = torch.arange(max_offset + 1, dtype=torch.float64)[:, None]  # (K, 1)
    return torch.cos(k * sinusoidal_frequencies(dim, base)).sum(-1).float()  # (K,)


def interleaved_to_concatenated_permutation(dim: int) -> Tensor:
    """Column order that turns the interleaved table into [sin … | cos …]: PE[:, perm]."""
    _check_args(dim, 2.0)
    return torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])


class SinusoidalPositionalEncoding(PositionScheme):
    """Adds the fixed sinusoidal table to the token embeddings (no parameters).

    The float64 table is cached as a (non-persistent) buffer on the device of the inputs and
    grows, doubling, when a position beyond it comes: no rebuild, no copy from the CPU per step.
    """

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        _check_args(dim, base)
        self.dim, self.base = dim, base
        self.register_buffer("table", torch.zeros(0, dim, dtype=torch.float64), persistent=False)

    def _table(self, rows: int, device) -> Tensor:
        """PE rows 0 … ≥ rows − 1 on ``device``, in float64 (rebuilt only when it must grow)."""
        t = self.table
        if len(t) < rows or t.device != torch.device(device) or t.dtype != torch.float64:
            size = max(rows, 2 * len(t))
            positions = torch.arange(size, dtype=torch.float64, device=device)
            self.table = _encode(positions, self.dim, self.base)  # (size, dim)
        return self.table

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        """x: (..., seq, dim); positions: (seq,) or (batch, seq) non-negative ints.

        One scalar read (the largest position) decides whether the table must grow.
        """
        check_float_tensor("x", x)
        check_int_tensor("positions", positions, " of non-negative positions")
        if x.dim() < 2 or x.shape[-1] != self.dim or positions.shape[-1] != x.shape[-2]:
            raise ValueError(
                f"need x of shape (..., seq, {self.dim}) and positions of shape (seq,) or "
                f"(batch, seq), got x {tuple(x.shape)}, positions {tuple(positions.shape)}"
            )
        if positions.numel() == 0:
            return x
        low, high = torch.stack(torch.aminmax(positions)).tolist()  # one read
        if low < 0:
            raise ValueError(f"positions must be >= 0, got {low}")
        pe = self._table(high + 1, x.device)[positions.to(x.device)]  # (..., seq, dim)
        return x + pe.to(x.dtype)


__all__ = [
    "SinusoidalPositionalEncoding",
    "interleaved_to_concatenated_permutation",
    "relative_dot_product_curve",
    "sinusoidal_encoding",
    "sinusoidal_frequencies",
    "sinusoidal_offset_matrix",
]
