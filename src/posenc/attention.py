"""Scaled dot-product attention, written out, and the test that shows it has no sense of order.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + B) V          (Vaswani et al., 2017, eq. 1)

``B`` is an optional additive bias (relative-position schemes such as T5 and ALiBi add one);
a causal mask sets B[i, j] = −∞ for keys j after query i.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class PositionScheme(nn.Module):
    """The one small interface through which a position scheme reaches attention.

    A scheme can act at three places; each default does nothing (that is NoPE):

    * ``embed(x, positions)``: absolute schemes add a vector to each token embedding;
    * ``rotate(q, k, positions)``: RoPE turns queries and keys by position-dependent angles;
    * ``bias(q_len, k_len)``: T5 and ALiBi add a (heads, q_len, k_len) term to the scores.

    ``positions`` are absolute token positions, shape (seq,).
    """

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return x

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        return q, k

    def bias(self, q_len: int, k_len: int) -> Tensor | None:
        return None


def causal_mask(q_len: int, k_len: int | None = None, device=None) -> Tensor:
    """Boolean (q_len, k_len) mask, True where query i may see key j.

    Aligned to the end: the last query sits at the last key, as in decoding with a KV cache,
    so query i stands at absolute position i + (k_len − q_len) and sees keys j ≤ that position.
    """
    k_len = q_len if k_len is None else k_len
    if q_len < 0 or k_len < q_len:
        raise ValueError(f"need 0 <= q_len <= k_len, got q_len={q_len}, k_len={k_len}")
    offset = k_len - q_len
    i = torch.arange(q_len, device=device)[:, None]  # (q_len, 1)
    j = torch.arange(k_len, device=device)[None, :]  # (1, k_len)
    return j <= i + offset  # (q_len, k_len)


def attention_weights(
    q: Tensor, k: Tensor, *, causal: bool = False, bias: Tensor | None = None
) -> Tensor:
    """softmax(Q Kᵀ / √d_k + B) over the keys.  q: (..., q_len, d_k), k: (..., k_len, d_k)."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., q_len, k_len)
    if bias is not None:
        scores = scores + bias
    if causal:
        mask = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)  # each row sums to 1


def attention_reference(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, bias: Tensor | None = None
) -> Tensor:
    """softmax(Q Kᵀ / √d_k + B) V.  Returns (..., q_len, d_v)."""
    return attention_weights(q, k, causal=causal, bias=bias) @ v


def self_attention(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, causal: bool = False
) -> Tensor:
    """Single-head self-attention of a sequence with itself.

    x: (..., seq, d_model); w_q, w_k: (d_model, d_k); w_v: (d_model, d_v).
    Returns (..., seq, d_v). No position information enters anywhere.
    """
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (..., seq, d_k), (..., seq, d_k), (..., seq, d_v)
    return attention_reference(q, k, v, causal=causal)


def permutation_equivariance_gap(attn_fn: Callable[[Tensor], Tensor], x: Tensor, perm) -> float:
    """max |attn_fn(P x) − P attn_fn(x)| for the permutation ``perm`` of the sequence axis.

    x: (..., seq, d). Zero (up to rounding) means shuffling the tokens merely shuffles the
    outputs the same way: the function cannot tell which token came first.
    """
    perm = torch.as_tensor(perm, dtype=torch.long)
    shuffled_then_attend = attn_fn(x[..., perm, :])  # (..., seq, d_out)
    attend_then_shuffle = attn_fn(x)[..., perm, :]  # (..., seq, d_out)
    return (shuffled_then_attend - attend_then_shuffle).abs().max().item()


def attention_sdpa(
    q: Tensor, k: Tensor, v: Tensor, *, bias: Tensor | None = None, causal: bool = True
) -> Tensor:
    """Attention through ``torch.nn.functional.scaled_dot_product_attention``, minding its
    two pitfalls:

    * ``is_causal=True`` together with ``attn_mask`` is an error, so with a bias the causal
      mask is folded into the bias as −inf;
    * ``is_causal=True`` aligns the mask to the *top-left* when q_len ≠ k_len (query 0 sees
      key 0 only), which is wrong for decoding with a cache; we pass an explicit mask
      aligned to the end instead.

    q: (..., q_len, d), k, v: (..., k_len, d); bias broadcastable to (..., q_len, k_len).
    """
    q_len, k_len = q.shape[-2], k.shape[-2]
    if bias is None:
        if not causal or q_len == k_len:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=causal_mask(q_len, k_len, device=q.device)
        )
    bias = bias.to(q.dtype)
    if causal:
        bias = bias.masked_fill(~causal_mask(q_len, k_len, device=q.device), float("-inf"))
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class MultiHeadAttention(nn.Module):
    """Multi-head (causal) self-attention that takes any position scheme.

    The scheme acts through :class:`PositionScheme`: ``rotate`` on q and k (RoPE), ``bias`` on
    the scores (T5, ALiBi). Absolute schemes act before this layer, on the embeddings.
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        scheme: PositionScheme | None = None,
        *,
        causal: bool = True,
    ):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.causal = num_heads, causal
        self.scheme = scheme if scheme is not None else PositionScheme()
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x: Tensor, positions: Tensor | None = None) -> Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model)."""
        batch, seq, d_model = x.shape
        positions = torch.arange(seq, device=x.device) if positions is None else positions
        q, k, v = self.qkv(x).view(batch, seq, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = self.scheme.rotate(q, k, positions)  # each (batch, heads, seq, head_dim)
        bias = self.scheme.bias(seq, seq)  # (heads, seq, seq) or None
        y = attention_sdpa(q, k, v, bias=bias, causal=self.causal)
        return self.out(y.transpose(1, 2).reshape(batch, seq, d_model))
