"""Learned absolute position embeddings (BERT, GPT-2, OPT).

A table P of shape (max_len, dim) is a parameter like any other; the input to the first
layer is

    h[t] = E[token_t] + P[t]          t = 0 … seq − 1

The table has exactly ``max_len`` rows, so a position ≥ max_len has no vector at all: the
model cannot even be *run* there, let alone extrapolate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posenc.attention import PositionScheme, check_float_tensor, check_int, check_int_tensor


def _positions_from(positions_or_length: Tensor | int) -> Tensor:
    if not isinstance(positions_or_length, Tensor):
        return torch.arange(check_int("length", positions_or_length))
    return check_int_tensor("positions", positions_or_length, " (or give an int length)")


def _check_table(name: str, table) -> Tensor:
    if check_float_tensor(name, table, 2).shape[0] < 1:
        raise ValueError(f"{name} must have at least one row, got {tuple(table.shape)}")
    return table


class LearnedPositionalEmbedding(PositionScheme):
    """A trainable (max_len, dim) table of position vectors, GPT-2 style (init N(0, 0.02²))."""

    def __init__(self, max_len: int, dim: int):
        super().__init__()
        max_len, dim = check_int("max_len", max_len, 1), check_int("dim", dim, 1)
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)  # (max_len, dim)

    def forward(self, positions_or_length: Tensor | int) -> Tensor:
        """Position vectors for the given positions (any shape) or for 0 … length − 1.

        Raises ValueError naming ``max_len`` for a position outside [0, max_len), instead of
        an IndexError on CPU or a device-side assert on CUDA.
        """
        positions = _positions_from(positions_or_length)
        if positions.numel():
            low, high = int(positions.min()), int(positions.max())
            if low < 0 or high >= self.max_len:
                bad = high if high >= self.max_len else low
                raise ValueError(
                    f"position {bad} is outside the learned table: max_len={self.max_len} "
                    f"covers positions 0 … {self.max_len - 1} only"
                )
        return F.embedding(positions.to(self.weight.device), self.weight)  # (..., dim)

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        """x: (..., seq, dim) + P[positions]."""
        check_float_tensor("x", x)
        if x.dim() < 2 or x.shape[-1] != self.weight.shape[1]:
            raise ValueError(
                f"x must have shape (..., seq, {self.weight.shape[1]}), got {tuple(x.shape)}"
            )
        return x + self(positions).to(x.dtype)


def clamped_positions(positions: Tensor, max_len: int) -> Tensor:
    """Map every position ≥ max_len to max_len − 1: the crude way to run a learned model long.

    Every token past the table shares the last row, so the model sees them as one position.
    """
    check_int_tensor("positions", positions)
    max_len = check_int("max_len", max_len, 1)
    if positions.numel() and int(positions.min()) < 0:
        raise ValueError(f"positions must be >= 0, got {int(positions.min())}")
    return positions.clamp(max=max_len - 1)


def interpolate_table(table: Tensor, new_len: int) -> Tensor:
    """Stretch a (max_len, dim) table to (new_len, dim) by linear interpolation between rows.

    A common way to extend a learned table (e.g. ViT's position grid at a new resolution);
    new rows are blends of trained ones, so the model still needs fine-tuning.
    """
    _check_table("table", table)
    new_len = check_int("new_len", new_len, 1)
    if len(table) == 1:
        return table.expand(new_len, -1).clone()  # one row: nothing to blend
    stretched = F.interpolate(
        table.T[None], size=new_len, mode="linear", align_corners=True
    )  # (1, dim, new_len)
    return stretched[0].T.contiguous()  # (new_len, dim)


def embed_with_positions(token_ids: Tensor, token_table: Tensor, position_table: Tensor) -> Tensor:
    """E[token_ids] + P[0 … seq − 1].  token_ids: (..., seq) -> (..., seq, dim).

    Raises ValueError naming max_len when seq exceeds the rows of ``position_table``.
    """
    check_int_tensor("token_ids", token_ids)
    _check_table("token_table", token_table)
    _check_table("position_table", position_table)
    if token_ids.dim() < 1 or token_table.shape[1] != position_table.shape[1]:
        raise ValueError(
            f"need token_ids of shape (..., seq) and tables of one width, got token_ids "
            f"{tuple(token_ids.shape)}, token_table {tuple(token_table.shape)}, position_table "
            f"{tuple(position_table.shape)}"
        )
    if token_ids.numel() and not 0 <= int(token_ids.min()) <= int(token_ids.max()) < len(
        token_table
    ):
        raise ValueError(f"token_ids must lie in [0, {len(token_table)}) (rows of token_table)")
    seq, max_len = token_ids.shape[-1], position_table.shape[0]
    if seq > max_len:
        raise ValueError(f"sequence of {seq} tokens is longer than max_len={max_len}")
    return token_table[token_ids] + position_table[:seq]  # (..., seq, dim) + (seq, dim)


def max_usable_length(position_table: Tensor, offset: int = 0) -> int:
    """The longest sequence a learned table can serve: its rows minus the reserved offset.

    OPT reserves the first 2 rows (a fairseq legacy, offset 2): its table of 2050 rows serves
    2048 positions.
    """
    if not isinstance(position_table, Tensor) or position_table.dim() < 1:
        raise TypeError("position_table must be a tensor of shape (rows, dim)")
    offset = check_int("offset", offset)
    if offset >= position_table.shape[0]:
        raise ValueError(f"offset must be in [0, {position_table.shape[0]}), got {offset}")
    return position_table.shape[0] - offset
