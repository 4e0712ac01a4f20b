"""Relative position in the attention scores: Shaw et al. (2018) and T5's bucketed bias.

Shaw et al.: a learned vector per clipped offset, added to the keys inside the score,

    e_ij = q_i · (k_j + a[clip(j − i, −K, K)]) / √d.

T5 (Raffel et al., 2020): a learned *scalar* per head and per bucket of the offset,

    e_ij = q_i · k_j / √d + b_h[bucket(j − i)],

with exact buckets for small offsets and logarithmically wider ones up to ``max_distance``;
every offset beyond that shares the last bucket.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from posenc.attention import PositionScheme


def relative_positions(q_len: int, k_len: int | None = None, device=None) -> Tensor:
    """Offsets j − i (key minus query), shape (q_len, k_len).

    When q_len < k_len (decoding with a cache) the queries are the *last* q_len positions.
    """
    k_len = q_len if k_len is None else k_len
    if q_len < 0 or k_len < q_len:
        raise ValueError(f"need 0 <= q_len <= k_len, got q_len={q_len}, k_len={k_len}")
    query = torch.arange(k_len - q_len, k_len, device=device)[:, None]  # (q_len, 1)
    key = torch.arange(k_len, device=device)[None, :]  # (1, k_len)
    return key - query


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
    if num_buckets < 2 or (bidirectional and num_buckets < 4):
        raise ValueError(f"num_buckets must be >= 4 (bidirectional) or >= 2, got {num_buckets}")
    if max_distance <= num_buckets // (4 if bidirectional else 2):
        raise ValueError(f"max_distance must exceed the exact range, got {max_distance}")
    rel = relative_position.long()
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


def relative_bias_matrix(
    bias_table: Tensor,
    q_len: int,
    k_len: int,
    *,
    bidirectional: bool = True,
    max_distance: int = 128,
) -> Tensor:
    """B[h, i, j] = bias_table[bucket(j − i), h].  bias_table: (num_buckets, heads).

    Returns (heads, q_len, k_len), ready to add to the attention scores.
    """
    buckets = t5_relative_bucket(
        relative_positions(q_len, k_len, device=bias_table.device),
        bidirectional=bidirectional,
        num_buckets=bias_table.shape[0],
        max_distance=max_distance,
    )  # (q_len, k_len)
    return bias_table[buckets].permute(2, 0, 1)  # (q_len, k_len, heads) -> (heads, q, k)


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
        self.bidirectional, self.max_distance = bidirectional, max_distance
        self.table = nn.Parameter(torch.zeros(num_buckets, num_heads))  # (buckets, heads)
        if not zero_init:
            nn.init.normal_(self.table, std=0.02)

    def bias(self, q_len: int, k_len: int) -> Tensor:
        return relative_bias_matrix(
            self.table,
            q_len,
            k_len,
            bidirectional=self.bidirectional,
            max_distance=self.max_distance,
        )


def shaw_relative_indices(q_len: int, k_len: int, max_relative: int) -> Tensor:
    """clip(j − i, −K, K) + K: the row of the (2K + 1, d) table used for each pair."""
    if max_relative < 0:
        raise ValueError(f"max_relative must be >= 0, got {max_relative}")
    return relative_positions(q_len, k_len).clamp(-max_relative, max_relative) + max_relative


def shaw_attention_scores(q: Tensor, k: Tensor, table: Tensor, max_relative: int) -> Tensor:
    """e_ij = q_i · (k_j + a[clip(j − i)]) / √d.  q: (..., q_len, d), k: (..., k_len, d),
    table: (2K + 1, d).  Returns the scores (..., q_len, k_len), before the softmax."""
    a = table[shaw_relative_indices(q.shape[-2], k.shape[-2], max_relative)]  # (q, k, d)
    content = q @ k.transpose(-1, -2)  # (..., q_len, k_len)
    position = torch.einsum("...id,ijd->...ij", q, a)  # q_i · a_ij
    return (content + position) / math.sqrt(q.shape[-1])
