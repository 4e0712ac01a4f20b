"""Shaw, Uszkoreit and Vaswani (2018): relative position *representations* inside attention.

Two learned tables of vectors, one row per clipped offset j − i (key minus query):
``table_k`` (a^K) joins the keys inside the score, ``table_v`` (a^V) joins the values inside
the weighted sum,

    a^K_ij = table_k[clip(j − i, −K, K) + K],     a^V_ij = table_v[clip(j − i, −K, K) + K]
    e_ij   = q_i · (k_j + a^K_ij) / √d
    z_i    = Σ_j softmax_j(e_ij) · (v_j + a^V_ij).

Every offset farther than K shares the row at the clip, so the tables have 2K + 1 rows
whatever the length. Compared with T5 (:mod:`posenc.relative_bias`): T5 adds a learned
*scalar* per head and bucket to the score; Shaw adds a learned *vector* per clipped offset,
dotted with the query, so the position term q_i · a^K_ij depends on the content of the query.
The tables are shared by all heads, as in the paper. Queries are aligned to the end of the
keys (q_len < k_len: decoding with a cache), as everywhere in posenc.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posenc.attention import check_float_tensor, check_int, offset_grid


def shaw_relative_indices(q_len: int, k_len: int, max_relative: int, device=None) -> Tensor:
    """clip(j − i, −K, K) + K: the row of a (2K + 1, d) table used by each pair, shape
    (q_len, k_len); queries are the last q_len of the k_len positions."""
    max_relative = check_int("max_relative", max_relative)
    offsets = offset_grid(q_len, k_len, device=device)  # (q_len, k_len): j − i
    return offsets.clamp(-max_relative, max_relative) + max_relative


def _check_inputs(q: Tensor, k: Tensor, tables: dict[str, Tensor], max_relative: int) -> None:
    """ValueError/TypeError naming the argument when q, k, the tables or K do not fit."""
    for name, t in (("q", q), ("k", k)):
        if check_float_tensor(name, t).dim() < 2:
            raise ValueError(f"{name} must have shape (..., seq, d), got {tuple(t.shape)}")
    check_int("max_relative", max_relative)
    d = q.shape[-1]
    if k.shape[-1] != d:
        raise ValueError(f"k must have q's width d = {d}, got k {tuple(k.shape)}")
    for name, table in tables.items():
        check_float_tensor(name, table, 2)
        if table.shape != (2 * max_relative + 1, d):
            raise ValueError(
                f"{name} must have shape (2·max_relative + 1, d) = ({2 * max_relative + 1}, "
                f"{d}), got {tuple(table.shape)}"
            )


def shaw_attention_scores(q: Tensor, k: Tensor, table: Tensor, max_relative: int) -> Tensor:
    """e_ij = q_i · (k_j + a[clip(j − i)]) / √d.  q: (..., q_len, d), k: (..., k_len, d),
    table: (2K + 1, d).  Returns the scores (..., q_len, k_len), before the softmax."""
    _check_inputs(q, k, {"table": table}, max_relative)
    rows = shaw_relative_indices(q.shape[-2], k.shape[-2], max_relative, q.device)
    a = table[rows]  # (q_len, k_len, d): a^K_ij
    content = q @ k.transpose(-1, -2)  # (..., q_len, k_len): q_i · k_j
    position = torch.einsum("...id,ijd->...ij", q, a)  # (..., q_len, k_len): q_i · a^K_ij
    return (content + position) / math.sqrt(q.shape[-1])


def shaw_relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    table_k: Tensor,
    table_v: Tensor,
    max_relative: int,
) -> Tensor:
    """z_i = Σ_j α_ij (v_j + a^V_ij), α = softmax_j(q_i · (k_j + a^K_ij) / √d).

    q: (..., q_len, d); k, v: (..., k_len, d) (``...`` is e.g. (batch, heads));
    table_k, table_v: (2K + 1, d) with K = ``max_relative``.  Returns (..., q_len, d).
    No mask: a decoder adds its causal mask to the scores as usual."""
    _check_inputs(q, k, {"table_k": table_k, "table_v": table_v}, max_relative)
    check_float_tensor("v", v)
    if v.shape != k.shape:
        raise ValueError(f"v must have k's shape {tuple(k.shape)}, got {tuple(v.shape)}")
    weights = torch.softmax(shaw_attention_scores(q, k, table_k, max_relative), dim=-1)
    rows = shaw_relative_indices(q.shape[-2], k.shape[-2], max_relative, q.device)
    a_v = table_v[rows]  # (q_len, k_len, d): a^V_ij
    content = weights @ v  # (..., q_len, d): Σ_j α_ij v_j
    position = torch.einsum("...ij,ijd->...id", weights, a_v)  # Σ_j α_ij a^V_ij
    return content + position
