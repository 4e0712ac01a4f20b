"""What attention and RoPE cost on paper: bytes moved and FLOPs (notebook 07 re-derives these,
then the benchmark in :mod:`posenc.experiments.bench` measures them)."""

from __future__ import annotations

import torch


def rope_bytes_moved(batch: int, heads: int, seq: int, dim: int, dtype: torch.dtype) -> int:
    """The least memory traffic of RoPE on one (batch, heads, seq, dim) tensor, in bytes:
    read x once, write the result once, and read the float32 cos and sin tables once
    (seq × dim/2 values each)."""
    element = torch.empty((), dtype=dtype).element_size()
    return 2 * batch * heads * seq * dim * element + 2 * seq * (dim // 2) * 4


def attention_flops(batch: int, heads: int, q_len: int, k_len: int, head_dim: int) -> int:
    """Forward FLOPs of the two matrix products of attention, Q Kᵀ and A V, with no mask
    savings: each is q_len × k_len × head_dim multiply-adds (2 FLOPs) per head."""
    return 2 * 2 * batch * heads * q_len * k_len * head_dim
