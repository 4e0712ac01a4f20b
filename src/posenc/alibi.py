"""ALiBi, attention with linear biases (Press, Smith and Lewis, 2022).

No position enters the embeddings. Instead, head h subtracts a penalty proportional to the
distance from every causal score:

    score[h, i, j] = q_i · k_j / √d − m_h · (i − j),      j ≤ i

with fixed slopes m_h forming a geometric sequence. For n heads, n a power of two,

    m_h = 2^(−8(h+1)/n),    h = 0 … n − 1      (n = 8: 1/2, 1/4, …, 1/256).

For other n, the reference code takes the slopes of the nearest lower power of two, 2^⌊log₂ n⌋,
and fills the rest with every other slope of the next power of two. BLOOM uses the same rule.

Where the queries stand (``offset``), which positions the distance counts (``positions``) and
padding (``key_padding_mask``) follow :mod:`posenc.attention`'s conventions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posenc.attention import (
    PositionScheme,
    attention_reference,
    bias_shape,
    check_float_tensor,
    check_int,
    check_lengths,
    drop_consecutive,
    offset_grid,
    toeplitz,
    visible_keys,
)


def _power_of_two_slopes(n: int) -> list[float]:
    start = 2.0 ** (-8.0 / n)  # = 2^(−2^−(log₂n − 3)) in the reference code
    return [start ** (h + 1) for h in range(n)]


def alibi_slopes(num_heads: int) -> Tensor:
    """The ALiBi slope of each head, shape (num_heads,), float32, as the paper's code."""
    num_heads = check_int("num_heads", num_heads, 1)
    if num_heads & (num_heads - 1) == 0:
        return torch.tensor(_power_of_two_slopes(num_heads))
    closest = 2 ** math.floor(math.log2(num_heads))
    extra = alibi_slopes(2 * closest)[0::2][: num_heads - closest]
    return torch.cat([torch.tensor(_power_of_two_slopes(closest)), extra])


def _check_slopes(slopes) -> Tensor:
    check_float_tensor("slopes", slopes, 1)
    if slopes.numel() == 0 or not (torch.isfinite(slopes) & (slopes > 0)).all():
        raise ValueError(f"slopes must be one finite value > 0 per head, got {slopes.tolist()}")
    return slopes


def bias_from_slopes(
    slopes: Tensor,
    q_len: int,
    k_len: int | None = None,
    *,
    causal: bool = True,
    offset: int | None = None,
    positions: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """−m_h · (i − j) (causal, −inf for j after i) or −m_h · |i − j|, for the given slopes;
    −inf for padded keys.

    Returns (heads, q_len, k_len), or (batch, heads, q_len, k_len) when ``positions`` or
    ``key_padding_mask`` have a batch axis, in the dtype and on the device of ``slopes``.
    Built in one pass over the output: the hidden entries are +inf *distances*, so the one
    product −m_h · distance is already −inf there.
    """
    slopes = _check_slopes(slopes)
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    k_len = check_int("q_len", q_len) if k_len is None else k_len
    shape = bias_shape(
        len(slopes),
        q_len,
        k_len,
        slopes.dtype,
        positions=positions,
        key_padding_mask=key_padding_mask,
    )
    if drop_consecutive(positions) is None and key_padding_mask is None:
        return _toeplitz_bias(slopes, q_len, k_len, offset, causal, shape)
    grid = offset_grid(q_len, k_len, offset=offset, positions=positions, device=slopes.device)
    work = torch.promote_types(slopes.dtype, torch.float32)  # distances exact in fp16/bf16 too
    distance = -grid.to(work) if causal else grid.abs().to(work)  # i − j or |i − j|
    hidden = visible_keys(
        q_len,
        k_len,
        causal=causal,
        offset=offset,
        key_padding_mask=key_padding_mask,
        device=slopes.device,
    )
    if hidden is not None:
        distance = distance.masked_fill(~hidden, float("inf"))  # (..., q_len, k_len)
    m = slopes.to(work)[:, None, None]  # (heads, 1, 1)
    bias = -m * distance.unsqueeze(-3)  # (heads, q, k) or (batch, heads, q, k)
    return bias.to(slopes.dtype).expand(shape)


def _toeplitz_bias(slopes: Tensor, q_len: int, k_len: int, offset, causal: bool, shape) -> Tensor:
    """Slots as positions, no padding: the bias depends on j − i only, so compute it on the
    q_len + k_len − 1 offsets that occur and lay them along the diagonals (one pass)."""
    q_len, k_len, start = check_lengths(q_len, k_len, offset)
    if q_len == 0 or k_len == 0:
        return slopes.new_zeros(shape)
    work = torch.promote_types(slopes.dtype, torch.float32)
    r = torch.arange(-(start + q_len - 1), k_len - start, device=slopes.device, dtype=work)
    distance = (-r).masked_fill(r > 0, float("inf")) if causal else r.abs()  # i − j, or |i − j|
    vals = -slopes.to(work)[:, None] * distance  # (heads, q_len + k_len − 1)
    return toeplitz(vals.to(slopes.dtype), q_len, k_len)  # (heads, q_len, k_len)


def alibi_bias(
    num_heads: int,
    q_len: int,
    k_len: int | None = None,
    *,
    causal: bool = True,
    offset: int | None = None,
    positions: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """bias[h, i, j] = −m_h · (i − j) for keys at or before the query, −inf after (causal).

    Queries are aligned to the *end* of the keys when q_len < k_len (decoding with a cache):
    query i stands at position i + k_len − q_len; ``offset`` places them elsewhere (a static
    cache). Not causal: −m_h · |i − j| everywhere. Padded keys get −inf. Returns
    (num_heads, q_len, k_len) float32, with a batch axis in front for batched ``positions``
    or ``key_padding_mask``. Above 2 GiB it raises: use a fused kernel (flex_attention).
    """
    return bias_from_slopes(
        alibi_slopes(num_heads),
        q_len,
        k_len,
        causal=causal,
        offset=offset,
        positions=positions,
        key_padding_mask=key_padding_mask,
    )


def attention_with_alibi(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    slopes: Tensor,
    *,
    offset: int | None = None,
    positions: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Causal attention with ALiBi.  q: (..., heads, q_len, d), k, v: (..., heads, k_len, d),
    slopes: (heads,).  Returns (..., heads, q_len, d).

    A query that sees no key at all (a padded query on the left) gives NaN, as softmax over
    nothing; mask those rows out of a loss.
    """
    check_float_tensor("q", q)
    if q.dim() < 3 or _check_slopes(slopes).shape[0] != q.shape[-3]:
        raise ValueError(
            f"slopes must have one value per head: q {tuple(q.shape)} has "
            f"{q.shape[-3] if q.dim() >= 3 else 'no'} heads (axis −3), slopes {len(slopes)}"
        )
    bias = bias_from_slopes(
        slopes.to(q.dtype),
        q.shape[-2],
        k.shape[-2] if isinstance(k, Tensor) and k.dim() >= 2 else None,
        offset=offset,
        positions=positions,
        key_padding_mask=key_padding_mask,
    )  # ([batch,] heads, q_len, k_len)
    return attention_reference(q, k, v, bias=bias)


class ALiBi(PositionScheme):
    """ALiBi as a position scheme: a fixed (heads, q_len, k_len) bias, causal by default."""

    def __init__(self, num_heads: int):
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(num_heads), persistent=False)

    def bias(
        self,
        q_len: int,
        k_len: int,
        *,
        causal: bool = True,
        offset: int | None = None,
        positions: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        return bias_from_slopes(
            self.slopes,
            q_len,
            k_len,
            causal=causal,
            offset=offset,
            positions=positions,
            key_padding_mask=key_padding_mask,
        )
