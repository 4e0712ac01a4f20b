"""ALiBi, attention with linear biases (Press, Smith and Lewis, 2022).

No position enters the embeddings. Instead, head h subtracts a penalty proportional to the
distance from every causal score:

    score[h, i, j] = q_i · k_j / √d − m_h · (i − j),      j ≤ i

with fixed slopes m_h forming a geometric sequence. For n heads, n a power of two,

    m_h = 2^(−8(h+1)/n),    h = 0 … n − 1      (n = 8: 1/2, 1/4, …, 1/256).

For other n, the reference code takes the slopes of the nearest lower power of two, 2^⌊log₂ n⌋,
and fills the rest with every other slope of the next power of two. BLOOM uses the same rule.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posenc.attention import PositionScheme, attention_reference
from posenc.relative_bias import relative_positions


def _power_of_two_slopes(n: int) -> list[float]:
    start = 2.0 ** (-8.0 / n)  # = 2^(−2^−(log₂n − 3)) in the reference code
    return [start ** (h + 1) for h in range(n)]


def alibi_slopes(num_heads: int) -> Tensor:
    """The ALiBi slope of each head, shape (num_heads,), float32, as the paper's code."""
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"num_heads must be a positive int, got {num_heads!r}")
    if num_heads & (num_heads - 1) == 0:
        return torch.tensor(_power_of_two_slopes(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = alibi_slopes(2 * closest)[0::2][: num_heads - closest]
    return torch.cat([torch.tensor(_power_of_two_slopes(closest)), extra])


def bias_from_slopes(
    slopes: Tensor, q_len: int, k_len: int | None = None, *, causal: bool = True
) -> Tensor:
    """−m_h · (i − j) (causal, −inf for j after i) or −m_h · |i − j|, for the given slopes.

    Returns (heads, q_len, k_len) in the dtype and on the device of ``slopes``.
    """
    distance = -relative_positions(q_len, k_len, device=slopes.device).to(slopes.dtype)  # i − j
    m = slopes[:, None, None]  # (heads, 1, 1)
    if not causal:
        return -m * distance.abs()
    return (-m * distance).masked_fill(distance < 0, float("-inf"))  # (heads, q_len, k_len)


def alibi_bias(
    num_heads: int, q_len: int, k_len: int | None = None, *, causal: bool = True
) -> Tensor:
    """bias[h, i, j] = −m_h · (i − j) for keys at or before the query, −inf after (causal).

    Queries are aligned to the *end* of the keys when q_len < k_len (decoding with a cache):
    query i stands at position i + k_len − q_len. Not causal: −m_h · |i − j| everywhere.
    Returns (num_heads, q_len, k_len) float32.
    """
    return bias_from_slopes(alibi_slopes(num_heads), q_len, k_len, causal=causal)


def attention_with_alibi(q: Tensor, k: Tensor, v: Tensor, slopes: Tensor) -> Tensor:
    """Causal attention with ALiBi.  q: (..., heads, q_len, d), k, v: (..., heads, k_len, d),
    slopes: (heads,).  Returns (..., heads, q_len, d)."""
    bias = bias_from_slopes(slopes.to(q), q.shape[-2], k.shape[-2])  # (heads, q_len, k_len)
    return attention_reference(q, k, v, bias=bias)


class ALiBi(PositionScheme):
    """ALiBi as a position scheme: a fixed (heads, q_len, k_len) bias, causal."""

    def __init__(self, num_heads: int):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def bias(self, q_len: int, k_len: int) -> Tensor:
        return bias_from_slopes(self.slopes, q_len, k_len)
