"""Relative-position biases computed inside the attention kernel, never stored as L × L.

ALiBi and T5 add a term to every score that depends only on the head h and the offset j − i:

    ALiBi:  score[h, i, j] += −m_h · (i − j)                   (a slope per head)
    T5:     score[h, i, j] += b_h[bucket(j − i)]                (a learned scalar per bucket)

so a kernel that computes scores tile by tile can add the term itself, from a per-head slope or
from a table over the 2L − 1 distinct offsets: O(H + L) extra memory instead of the
O(H·L²) of a materialised bias. ``torch.nn.attention.flex_attention`` does exactly this: a
``score_mod(score, b, h, q_idx, kv_idx)`` is compiled into the kernel, and a causal
``block_mask`` lets it skip the tiles above the diagonal.

:func:`attention_fused` runs NoPE, ALiBi or T5 that way (compiled once per shape, on CPU
through inductor's C++ backend and on CUDA through Triton). :func:`attention_biased` is the
readable reference and the fallback: the same bias materialised and handed to SDPA.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from posenc.alibi import bias_from_slopes
from posenc.attention import attention_sdpa
from posenc.relative_bias import relative_bias_matrix, t5_relative_bucket

try:  # flex_attention landed in torch 2.5
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
except ImportError:  # pragma: no cover - older torch: only the SDPA fallback
    create_block_mask = flex_attention = None

SCHEMES = ("nope", "alibi", "t5")
# One compiled kernel per (shape, score_mod). Past torch._dynamo's default of 8 per function,
# flex_attention would quietly run unfused, materialising the L × L scores: allow more.
RECOMPILE_LIMIT = 64
ScoreMod = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def flex_available() -> bool:
    """True when the installed torch has ``flex_attention`` (torch ≥ 2.5)."""
    return flex_attention is not None


# ----------------------------------------------------------------------------------------
# Score modifications: functions of (head, query index, key index), evaluated in the kernel
# ----------------------------------------------------------------------------------------


def alibi_score_mod(slopes: Tensor, q_len: int, k_len: int, *, causal: bool = True) -> ScoreMod:
    """score − m_h · (i − j) (causal) or − m_h · |i − j|, with query i at absolute position
    i + k_len − q_len (end-aligned, as with a KV cache).  slopes: (heads,)."""
    shift = k_len - q_len

    def score_mod(score, b, h, q_idx, kv_idx):
        distance = q_idx + shift - kv_idx  # i − j
        return score - slopes[h] * (distance if causal else distance.abs())

    return score_mod


def t5_offset_table(
    table: Tensor, k_len: int, *, bidirectional: bool = False, max_distance: int = 128
) -> Tensor:
    """T5's bias for each of the 2·k_len − 1 distinct offsets j − i = −(k_len − 1) … k_len − 1.

    table: (num_buckets, heads), T5's learned weights.  Returns (heads, 2·k_len − 1): column
    c holds b_h[bucket(c − (k_len − 1))]. Bucketing 2L − 1 offsets instead of L² pairs.
    """
    offsets = torch.arange(-(k_len - 1), k_len, device=table.device)  # (2L − 1,)
    buckets = t5_relative_bucket(
        offsets, bidirectional=bidirectional, num_buckets=table.shape[0], max_distance=max_distance
    )  # (2L − 1,)
    return table[buckets].T.contiguous()  # (2L − 1, heads) -> (heads, 2L − 1)


def t5_score_mod(per_offset: Tensor, q_len: int, k_len: int) -> ScoreMod:
    """score + b_h[bucket(j − i)], read from the (heads, 2·k_len − 1) offset table."""
    shift = k_len - q_len  # query i stands at absolute position i + shift

    def score_mod(score, b, h, q_idx, kv_idx):
        offset = kv_idx - (q_idx + shift)  # j − i, in −(k_len − 1) … k_len − 1
        return score + per_offset[h, offset + k_len - 1]

    return score_mod


# ----------------------------------------------------------------------------------------
# The fused path
# ----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def causal_block_mask(q_len: int, k_len: int, device: str = "cpu"):
    """flex_attention's causal BlockMask, end-aligned (query i sees keys j ≤ i + k_len − q_len).

    Built once per (q_len, k_len, device) and cached: it stores one entry per tile pair, not
    per score. The kernel skips the tiles that are entirely masked.
    """
    shift = k_len - q_len

    def causal(b, h, q_idx, kv_idx):
        return kv_idx <= q_idx + shift

    return create_block_mask(causal, None, None, q_len, k_len, device=device)


@functools.lru_cache(maxsize=1)
def compiled_flex_attention() -> Callable:
    """``torch.compile(flex_attention)``: the fused kernel. Compiling is paid on the first call
    for each shape and score_mod (tens of seconds on a small CPU), then reused."""
    return torch.compile(flex_attention, dynamic=False)


def _score_mod(scheme: str, q_len: int, k_len: int, slopes, table, causal, **t5) -> ScoreMod:
    builders = {
        "nope": lambda: None,
        "alibi": lambda: alibi_score_mod(slopes, q_len, k_len, causal=causal),
        "t5": lambda: t5_score_mod(t5_offset_table(table, k_len, **t5), q_len, k_len),
    }
    return builders[scheme]()


def _check_args(scheme: str, q: Tensor, slopes: Tensor | None, table: Tensor | None) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if q.ndim != 4:
        raise ValueError(f"q, k, v must be (batch, heads, seq, head_dim), got {tuple(q.shape)}")
    heads = q.shape[1]
    if scheme == "alibi" and (slopes is None or slopes.shape != (heads,)):
        raise ValueError(f"scheme 'alibi' needs slopes of shape ({heads},), got {slopes!r}")
    if scheme == "t5" and (table is None or table.ndim != 2 or table.shape[1] != heads):
        raise ValueError(f"scheme 't5' needs a (num_buckets, {heads}) table, got {table!r}")


def attention_fused(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    scheme: str = "nope",
    slopes: Tensor | None = None,
    table: Tensor | None = None,
    causal: bool = True,
    bidirectional: bool = False,
    max_distance: int = 128,
) -> Tensor:
    """softmax(Q Kᵀ / √d + B) V with B computed inside a compiled flex_attention kernel.

    q: (batch, heads, q_len, d), k, v: (batch, heads, k_len, d), q_len ≤ k_len when causal.
    ``scheme``: "nope" (no bias), "alibi" (``slopes``: (heads,), e.g. ``alibi_slopes(heads)``)
    or "t5" (``table``: (num_buckets, heads) learned weights; ``bidirectional`` and
    ``max_distance`` as in :func:`posenc.relative_bias.t5_relative_bucket`).
    Returns (batch, heads, q_len, d). Without flex_attention, falls back to
    :func:`attention_biased` (the same result through SDPA and a materialised bias).
    """
    _check_args(scheme, q, slopes, table)
    t5 = {"bidirectional": bidirectional, "max_distance": max_distance}
    if not flex_available():
        return attention_biased(
            q, k, v, scheme=scheme, slopes=slopes, table=table, causal=causal, **t5
        )
    q_len, k_len = q.shape[-2], k.shape[-2]
    slopes = None if slopes is None else slopes.to(q.device, torch.float32)  # (heads,)
    table = None if table is None else table.to(q.device, torch.float32)  # (buckets, heads)
    score_mod = _score_mod(scheme, q_len, k_len, slopes, table, causal, **t5)
    block_mask = causal_block_mask(q_len, k_len, str(q.device)) if causal else None
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        return compiled_flex_attention()(q, k, v, score_mod=score_mod, block_mask=block_mask)


def attention_biased(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    scheme: str = "nope",
    slopes: Tensor | None = None,
    table: Tensor | None = None,
    causal: bool = True,
    bidirectional: bool = False,
    max_distance: int = 128,
) -> Tensor:
    """The reference for :func:`attention_fused`: the bias materialised as (1, heads, q, k)
    and handed to SDPA (the batch axis keeps SDPA on its fast kernels). Same arguments."""
    _check_args(scheme, q, slopes, table)
    q_len, k_len = q.shape[-2], k.shape[-2]
    biases = {
        "nope": lambda: None,
        "alibi": lambda: bias_from_slopes(slopes.to(q), q_len, k_len, causal=causal),
        "t5": lambda: relative_bias_matrix(
            table.to(q), q_len, k_len, bidirectional=bidirectional, max_distance=max_distance
        ),
    }
    bias = biases[scheme]()  # (heads, q_len, k_len) or None
    bias = None if bias is None else bias[None]  # (1, heads, q_len, k_len)
    return attention_sdpa(q, k, v, bias=bias, causal=causal)
