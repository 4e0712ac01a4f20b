"""Relative position in the attention scores: T5's bucketed bias.

Shaw et al. (2018), a learned vector per clipped offset, lives in :mod:`posenc.relative_shaw`
(re-exported here).

T5 (Raffel et al., 2020): a learned *scalar* per head and per bucket of the offset,

    e_ij = q_i · k_j / √d + b_h[bucket(j − i)],

with exact buckets for small offsets and logarithmically wider ones up to ``max_distance``;
every offset beyond that shares the last bucket.

The bias depends on j − i only, so it is a Toeplitz matrix: ``relative_bias_matrix`` buckets
the q_len + k_len − 1 distinct offsets once and lays the values out along the diagonals,
instead of bucketing all q_len · k_len pairs. Offsets, positions and padding follow
:mod:`posenc.attention`'s conventions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from posenc.attention import (
    PositionScheme,
    bias_shape,
    check_float_tensor,
    check_int,
    check_lengths,
    drop_consecutive,
    offset_grid,
    toeplitz,
    visible_keys,
)
from posenc.relative_shaw import shaw_attention_scores, shaw_relative_indices  # noqa: F401


def relative_positions(
    q_len: int,
    k_len: int | None = None,
    device=None,
    *,
    offset: int | None = None,
    positions: Tensor | None = None,
) -> Tensor:
    """Offsets j − i (key minus query), shape (q_len, k_len).

    When q_len < k_len (decoding with a cache) the queries are the *last* q_len positions,
    unless ``offset`` (the first query's slot) says otherwise; ``positions`` (one per key,
    (k_len,) or (batch, k_len)) replaces the slot numbers (then (batch, q_len, k_len)).
    """
    return offset_grid(q_len, k_len, offset=offset, positions=positions, device=device)


def _check_offsets(relative_position) -> Tensor:
    if isinstance(relative_position, (int, list, tuple)) and not isinstance(
        relative_position, bool
    ):
        relative_position = torch.as_tensor(relative_position)
    if not isinstance(relative_position, Tensor):
        raise TypeError(
            f"relative_position must be an integer tensor of offsets j − i, got "
            f"{type(relative_position).__name__}"
        )
    if (
        relative_position.dtype == torch.bool
        or not (relative_position.dtype.is_signed or relative_position.dtype == torch.uint8)
        or relative_position.is_floating_point()
        or relative_position.is_complex()
    ):
        raise TypeError(
            f"relative_position must hold integer offsets j − i (int8 … int64), got "
            f"{relative_position.dtype}: a fractional offset has no bucket"
        )
    rel = relative_position.long()
    if rel.numel() and rel.min() == torch.iinfo(torch.int64).min:
        raise ValueError("relative_position must be > −2⁶³ (its distance overflows int64)")
    return rel


def t5_relative_bucket(
    relative_position: Tensor,
    *,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> Tensor:
    """T5's bucket index for each offset j − i, exactly as T5 (and Hugging Face's port) does.

    Bidirectional: half the buckets for keys after the query (j − i > 0), half for the rest.
    Unidirectional (decoder): only j − i ≤ 0 matters; future offsets fall in bucket 0.
    Within a half of n buckets, distances 0 … n/2 − 1 get a bucket each, and distances from
    n/2 to max_distance share the other n/2 buckets on a log scale:

        bucket(r) = n/2 + ⌊ log(r / (n/2)) / log(max_distance / (n/2)) · (n − n/2) ⌋,

    capped at n − 1.
    """
    rel = _check_offsets(relative_position)
    if not isinstance(bidirectional, bool):
        raise TypeError(f"bidirectional must be a bool, got {bidirectional!r}")
    num_buckets = check_int("num_buckets", num_buckets)
    max_distance = check_int("max_distance", max_distance)
    if num_buckets < 2 or (bidirectional and num_buckets < 4):
        raise ValueError(f"num_buckets must be >= 4 (bidirectional) or >= 2, got {num_buckets}")
    if max_distance <= num_buckets // (4 if bidirectional else 2):
        raise ValueError(f"max_distance must exceed the exact range, got {max_distance}")
    buckets = torch.zeros_like(rel)
    n = num_buckets
    if bidirectional:
        n //= 2
        buckets = buckets + (rel > 0).long() * n  # keys after the query use the upper half
        distance = rel.abs()
    else:
        distance = (-rel).clamp(min=0)  # only the past counts
    max_exact = n // 2
    is_small = distance < max_exact
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(
        max_distance / max_exact
    )
    if_large = max_exact + (log_ratio * (n - max_exact)).long()  # truncation, as T5
    if_large = if_large.clamp(max=n - 1)
    return buckets + torch.where(is_small, distance, if_large)


def _values(table: Tensor, offsets: Tensor, bidirectional: bool, max_distance: int) -> Tensor:
    """table[bucket(r), h] for each offset r: (heads, len(offsets))."""
    buckets = t5_relative_bucket(
        offsets, bidirectional=bidirectional, num_buckets=table.shape[0], max_distance=max_distance
    )
    return table[buckets].T  # (heads, R)


def _gathered(
    table: Tensor, grid: Tensor, hidden: Tensor | None, bidirectional: bool, max_distance: int
) -> Tensor:
    """The general case (positions or padding): bucket the distinct offsets of ``grid``
    (..., q_len, k_len) once, then gather; pairs ``hidden`` masks read an extra −inf column."""
    low, high = torch.stack(torch.aminmax(grid)).tolist()
    offsets = torch.arange(low, high + 1, device=table.device)  # each offset that occurs
    vals = _values(table, offsets, bidirectional, max_distance)  # (heads, R)
    index = grid - low
    if hidden is not None:
        vals = torch.cat([vals, vals.new_full((len(vals), 1), float("-inf"))], dim=1)
        index = index.masked_fill(~hidden, vals.shape[1] - 1)
    heads = torch.arange(len(vals), device=table.device)[:, None, None]  # (heads, 1, 1)
    return vals[heads, index.unsqueeze(-3)]  # ([batch,] heads, q_len, k_len)


def relative_bias_matrix(
    bias_table: Tensor,
    q_len: int,
    k_len: int,
    *,
    bidirectional: bool = True,
    max_distance: int = 128,
    causal: bool = False,
    offset: int | None = None,
    positions: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """B[h, i, j] = bias_table[bucket(j − i), h].  bias_table: (num_buckets, heads).

    Returns (heads, q_len, k_len), ready to add to the attention scores: −inf where
    ``causal`` or ``key_padding_mask`` hide a key; a batch axis in front for batched
    ``positions`` or ``key_padding_mask``. Above 2 GiB it raises: use a fused kernel
    (flex_attention).
    """
    check_float_tensor("bias_table", bias_table, 2)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    q_len, k_len, start = check_lengths(q_len, k_len, offset)
    shape = bias_shape(
        bias_table.shape[1],
        q_len,
        k_len,
        bias_table.dtype,
        positions=positions,
        key_padding_mask=key_padding_mask,
    )
    if q_len == 0 or k_len == 0:
        return bias_table.new_zeros(shape)
    if drop_consecutive(positions) is not None or key_padding_mask is not None:
        device = bias_table.device
        grid = offset_grid(q_len, k_len, offset=offset, positions=positions, device=device)
        hidden = visible_keys(
            q_len,
            k_len,
            causal=causal,
            offset=offset,
            key_padding_mask=key_padding_mask,
            device=device,
        )
        return _gathered(bias_table, grid, hidden, bidirectional, max_distance)
    offsets = torch.arange(-(start + q_len - 1), k_len - start, device=bias_table.device)
    vals = _values(bias_table, offsets, bidirectional, max_distance)  # (heads, q + k − 1)
    if causal:
        vals = vals.masked_fill(offsets > 0, float("-inf"))  # keys after the query
    return toeplitz(vals, q_len, k_len)


class T5RelativeBias(PositionScheme):
    """A learned scalar per (bucket, head), added to the attention scores."""

    def __init__(
        self,
        num_heads: int,
        *,
        num_buckets: int = 32,
        max_distance: int = 128,
        bidirectional: bool = False,
        zero_init: bool = True,
    ):
        super().__init__()
        t5_relative_bucket(
            torch.zeros(1, dtype=torch.long),
            bidirectional=bidirectional,
            num_buckets=num_buckets,
            max_distance=max_distance,
        )  # checks them
        num_heads = check_int("num_heads", num_heads, 1)
        self.bidirectional, self.max_distance = bidirectional, max_distance
        self.table = nn.Parameter(torch.zeros(num_buckets, num_heads))  # (buckets, heads)
        if not zero_init:
            nn.init.normal_(self.table, std=0.02)

    def bias(
        self,
        q_len: int,
        k_len: int,
        *,
        causal: bool = False,
        offset: int | None = None,
        positions: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        return relative_bias_matrix(
            self.table,
            q_len,
            k_len,
            bidirectional=self.bidirectional,
            max_distance=self.max_distance,
            causal=causal,
            offset=offset,
            positions=positions,
            key_padding_mask=key_padding_mask,
        )
