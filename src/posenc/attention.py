"""Scaled dot-product attention, written out, and the test that shows it has no sense of order.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + B) V          (Vaswani et al., 2017, eq. 1)

``B`` is an optional additive bias (relative-position schemes such as T5 and ALiBi add one);
a causal mask sets B[i, j] = −∞ for keys j after query i, and a key padding mask does the same
for keys that are padding.

Where the queries stand among the keys. The keys are the slots 0 … k_len − 1 (of a KV cache, or
of the sequence itself); query i stands at slot ``offset + i``. By default ``offset = k_len −
q_len``: the queries are the *last* q_len slots (end-aligned, as in decoding with a cache). A
static cache passes the number of tokens already written instead (``offset=10`` for the 11th
token of a 64-slot cache). Causality is decided by slots: query i sees key j when j ≤ offset + i.
The position *values* that relative schemes measure distances with are, by default, the slots
themselves; ``positions`` (one per key, ``(k_len,)`` or ``(batch, k_len)``) replaces them, e.g. to
count only real tokens past a padding hole as BLOOM does.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A bias (or mask) larger than this is refused: at 2 GiB a materialised (heads, L, L) bias is
# past what a layer should allocate, and a fused kernel computes the same bias score by score.
MAX_BIAS_BYTES = 2 * 1024**3
FUSED_HINT = "use a fused kernel (flex_attention) that computes the bias inside the attention"


# --- argument checks shared by the encodings ----------------------------------------------


def check_int(name: str, value, minimum: int | None = 0) -> int:
    """``value`` as an int, or TypeError/ValueError naming ``name`` and the accepted values.

    bool and float are refused (a length of 2.5 must not become 3, nor True become 1); a 0-d
    integer tensor (as Hugging Face passes ``past_seen_tokens``) is read as its int.
    """
    if isinstance(value, Tensor) and value.dim() == 0 and not value.is_floating_point():
        if value.dtype != torch.bool and not value.is_complex():
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        bound = "" if minimum is None else f" >= {minimum}"
        raise TypeError(f"{name} must be an int{bound}, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_float_tensor(name: str, value, ndim: int | tuple[int, ...] | None = None) -> Tensor:
    """A floating tensor (float16/bfloat16/float32/float64), optionally of the given rank(s)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), got "
            f"{value.dtype}; convert it with .float() first"
        )
    ranks = (ndim,) if isinstance(ndim, int) else ndim
    if ranks is not None and value.dim() not in ranks:
        raise ValueError(f"{name} must have {' or '.join(map(str, ranks))} dims, got {value.dim()}")
    return value


def check_int_tensor(name: str, value, shape_hint: str = "") -> Tensor:
    """An integer tensor (never bool, never floating: positions are counted, not measured)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be an integer torch.Tensor, got {type(value).__name__}")
    if value.dtype == torch.bool or value.is_floating_point() or value.is_complex():
        raise TypeError(f"{name} must be an integer tensor{shape_hint}, got {value.dtype}")
    return value


def check_bias_size(shape: tuple[int, ...], dtype: torch.dtype, name: str = "bias") -> None:
    """Refuse to allocate a bias above MAX_BIAS_BYTES (2 GiB), naming its size and the way out."""
    size = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if size > MAX_BIAS_BYTES:
        raise ValueError(
            f"the {name} of shape {tuple(shape)} ({dtype}) would take {size / 1024**3:.1f} GiB, "
            f"over the {MAX_BIAS_BYTES / 1024**3:.0f} GiB limit (posenc.attention.MAX_BIAS_BYTES)"
            f"; {FUSED_HINT}, or attend in blocks of queries"
        )


def check_lengths(q_len, k_len, offset) -> tuple[int, int, int]:
    """(q_len, k_len, offset) checked, k_len defaulting to q_len and offset to k_len − q_len."""
    q_len = check_int("q_len", q_len)
    k_len = q_len if k_len is None else check_int("k_len", k_len)
    if offset is None:
        if k_len < q_len:
            raise ValueError(
                f"need q_len <= k_len when the queries are the last keys, got q_len={q_len}, "
                f"k_len={k_len}; pass offset= to place them elsewhere"
            )
        return q_len, k_len, k_len - q_len
    offset = check_int("offset", offset)
    if offset + q_len > k_len:
        raise ValueError(
            f"offset + q_len must be <= k_len (the queries are among the keys), got "
            f"offset={offset}, q_len={q_len}, k_len={k_len}"
        )
    return q_len, k_len, offset


def _check_positions(positions, k_len: int) -> Tensor:
    positions = check_int_tensor("positions", positions, " of shape (k_len,) or (batch, k_len)")
    if positions.dim() not in (1, 2) or positions.shape[-1] != k_len:
        raise ValueError(
            f"positions must have shape ({k_len},) or (batch, {k_len}), one per key, got "
            f"{tuple(positions.shape)}"
        )
    return positions


def check_key_padding_mask(mask, k_len: int) -> Tensor:
    """(k_len,) or (batch, k_len), True (or 1) for a real key, False (or 0) for padding."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"key_padding_mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dim() not in (1, 2) or mask.shape[-1] != k_len:
        raise ValueError(
            f"key_padding_mask must have shape ({k_len},) or (batch, {k_len}), got "
            f"{tuple(mask.shape)}"
        )
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point() or mask.is_complex() or not ((mask == 0) | (mask == 1)).all():
        raise TypeError(
            f"key_padding_mask must be bool, or integers 0/1 (1 = a real token), got {mask.dtype}"
        )
    return mask.bool()


# --- the grid of offsets, and the masks built on it ---------------------------------------


def offset_grid(
    q_len: int,
    k_len: int | None = None,
    *,
    offset: int | None = None,
    positions: Tensor | None = None,
    device=None,
) -> Tensor:
    """pos[j] − pos[i]: key position minus query position, shape (q_len, k_len), or
    (batch, q_len, k_len) for batched ``positions``.

    Query i is key slot ``offset + i`` (default: the last q_len slots); ``pos`` is ``positions``
    (one per key) or the slot index itself.
    """
    q_len, k_len, offset = check_lengths(q_len, k_len, offset)
    if positions is None:
        key = torch.arange(k_len, device=device)  # (k_len,)
    else:
        key = _check_positions(positions, k_len)
    query = key[..., offset : offset + q_len]  # (..., q_len): the queries' own positions
    return key[..., None, :] - query[..., :, None]  # (..., q_len, k_len)


def causal_mask(
    q_len: int, k_len: int | None = None, device=None, *, offset: int | None = None
) -> Tensor:
    """Boolean (q_len, k_len) mask, True where query i may see key j.

    Aligned to the end by default: the last query sits at the last key, as in decoding with a
    KV cache, so query i stands at slot i + offset (offset = k_len − q_len) and sees keys j ≤
    that slot.
    """
    return offset_grid(q_len, k_len, offset=offset, device=device) <= 0  # j − (i + offset) ≤ 0


def visible_keys(
    q_len: int,
    k_len: int | None = None,
    *,
    causal: bool,
    offset: int | None = None,
    key_padding_mask: Tensor | None = None,
    device=None,
) -> Tensor | None:
    """True where query i may see key j: causal (by slot) and not padding.

    Returns (q_len, k_len), (batch, q_len, k_len) with a batched padding mask, or None when
    every key is visible.
    """
    if not isinstance(causal, bool):
        raise TypeError(f"causal must be a bool, got {causal!r}")
    q_len, k_len, offset = check_lengths(q_len, k_len, offset)
    mask = causal_mask(q_len, k_len, device, offset=offset) if causal else None
    if key_padding_mask is None:
        return mask
    real = check_key_padding_mask(key_padding_mask, k_len).to(device)[..., None, :]  # (.., 1, k)
    return real if mask is None else mask & real  # (..., q_len, k_len)


def drop_consecutive(positions: Tensor | None) -> Tensor | None:
    """None for 1-D positions p₀, p₀ + 1, …: a relative bias sees only p_j − p_i = j − i there,
    the slots' offsets, and can take the diagonal (Toeplitz) layout; else ``positions``."""
    if isinstance(positions, Tensor) and positions.dim() == 1 and not positions.is_floating_point():
        if bool((positions.diff() == 1).all()):
            return None
    return positions


def toeplitz(vals: Tensor, q_len: int, k_len: int) -> Tensor:
    """B[..., i, j] = vals[..., j − i + q_len − 1] for vals (..., q_len + k_len − 1): a bias
    that depends on the offset j − i only, laid out along the diagonals.

    unfold gives the windows U[..., s, :] = vals[..., s : s + k_len]; row i is window
    q_len − 1 − i, hence the flip (the one pass that writes the output). A strided view
    cannot do it: j − i needs strides of opposite signs, and torch has no negative strides.
    """
    return vals.unfold(-1, k_len, 1).flip(-2)  # (..., q_len, k_len)


def as_batched_bias(bias: Tensor, ndim: int) -> Tensor:
    """View a (heads, q, k) bias as (1, heads, q, k) (for ``ndim`` 4): SDPA's fused CPU and
    CUDA kernels take a 4-D mask, a 3-D one sends it to the slow math kernel."""
    return bias.view((1,) * (ndim - bias.dim()) + bias.shape) if bias.dim() < ndim else bias


class PositionScheme(nn.Module):
    """The one small interface through which a position scheme reaches attention.

    A scheme can act at three places; each default does nothing (that is NoPE):

    * ``embed(x, positions)``: absolute schemes add a vector to each token embedding;
    * ``rotate(q, k, positions)``: RoPE turns queries and keys by position-dependent angles;
    * ``bias(q_len, k_len, *, causal, offset, positions, key_padding_mask)``: T5 and ALiBi add
      a (heads, q_len, k_len) term to the scores — (batch, heads, q_len, k_len) when
      ``positions`` or ``key_padding_mask`` have a batch axis — with −∞ already in place
      where ``causal`` or the padding mask hide a key (see the module docstring for ``offset``
      and ``positions``).

    ``positions`` are absolute token positions, shape (seq,).
    """

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return x

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        return q, k

    def bias(
        self,
        q_len: int,
        k_len: int,
        *,
        causal: bool = False,
        offset: int | None = None,
        positions: Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor | None:
        return None


def _check_qk(q, k) -> None:
    for name, t in (("q", q), ("k", k)):
        if check_float_tensor(name, t).dim() < 2:
            raise ValueError(f"{name} must have shape (..., seq, head_dim), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1] or q.dtype != k.dtype:
        raise ValueError(
            f"q and k must share head_dim and dtype, got q {tuple(q.shape)} {q.dtype}, "
            f"k {tuple(k.shape)} {k.dtype}"
        )


def _check_v(k: Tensor, v) -> None:
    check_float_tensor("v", v)
    if v.dim() < 2 or v.shape[-2] != k.shape[-2] or v.dtype != k.dtype:
        raise ValueError(
            f"v must have k's sequence length and dtype, got v {tuple(v.shape)} {v.dtype}, "
            f"k {tuple(k.shape)} {k.dtype}"
        )


def _check_bias(bias, q: Tensor, k: Tensor) -> Tensor:
    check_float_tensor("bias", bias)
    scores = (*q.shape[:-1], k.shape[-2])  # (..., q_len, k_len)
    try:
        if torch.broadcast_shapes(bias.shape, scores) != scores:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(
            f"bias of shape {tuple(bias.shape)} does not broadcast to the scores {scores}"
        ) from None
    return bias


def attention_weights(
    q: Tensor, k: Tensor, *, causal: bool = False, bias: Tensor | None = None
) -> Tensor:
    """softmax(Q Kᵀ / √d_k + B) over the keys.  q: (..., q_len, d_k), k: (..., k_len, d_k)."""
    _check_qk(q, k)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., q_len, k_len)
    if bias is not None:
        scores = scores + _check_bias(bias, q, k)
    mask = visible_keys(q.shape[-2], k.shape[-2], causal=causal, device=q.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)  # each row sums to 1


def attention_reference(
    q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False, bias: Tensor | None = None
) -> Tensor:
    """softmax(Q Kᵀ / √d_k + B) V.  Returns (..., q_len, d_v)."""
    _check_qk(q, k)
    _check_v(k, v)
    return attention_weights(q, k, causal=causal, bias=bias) @ v


def self_attention(
    x: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, causal: bool = False
) -> Tensor:
    """Single-head self-attention of a sequence with itself.

    x: (..., seq, d_model); w_q, w_k: (d_model, d_k); w_v: (d_model, d_v).
    Returns (..., seq, d_v). No position information enters anywhere.
    """
    check_float_tensor("x", x)
    for name, w in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v)):
        if check_float_tensor(name, w, 2).shape[0] != x.shape[-1]:
            raise ValueError(
                f"{name} must have shape (d_model, ·) with d_model = x.shape[-1] = "
                f"{x.shape[-1]}, got {tuple(w.shape)}"
            )
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (..., seq, d_k), (..., seq, d_k), (..., seq, d_v)
    return attention_reference(q, k, v, causal=causal)


def permutation_equivariance_gap(attn_fn: Callable[[Tensor], Tensor], x: Tensor, perm) -> float:
    """max |attn_fn(P x) − P attn_fn(x)| for the permutation ``perm`` of the sequence axis.

    x: (..., seq, d). Zero (up to rounding) means shuffling the tokens merely shuffles the
    outputs the same way: the function cannot tell which token came first.
    """
    if not callable(attn_fn):
        raise TypeError(f"attn_fn must be callable, got {type(attn_fn).__name__}")
    check_float_tensor("x", x)
    perm = torch.as_tensor(perm)
    seq = x.shape[-2] if x.dim() >= 2 else -1
    if (
        perm.dtype.is_floating_point
        or perm.dim() != 1
        or not torch.equal(perm.sort().values, torch.arange(seq))
    ):
        raise ValueError(f"perm must be a permutation of 0 … {seq - 1} (x's sequence axis)")
    shuffled_then_attend = attn_fn(x[..., perm, :])  # (..., seq, d_out)
    attend_then_shuffle = attn_fn(x)[..., perm, :]  # (..., seq, d_out)
    return (shuffled_then_attend - attend_then_shuffle).abs().max().item()


def attention_sdpa(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    bias: Tensor | None = None,
    causal: bool = True,
    offset: int | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Attention through ``torch.nn.functional.scaled_dot_product_attention``, minding its
    pitfalls:

    * ``is_causal=True`` together with ``attn_mask`` is an error, so with a bias the causal
      mask is folded into the bias as −inf (a scheme that already folded it passes
      ``causal=False`` and saves that pass);
    * ``is_causal=True`` aligns the mask to the *top-left* when q_len ≠ k_len (query 0 sees
      key 0 only), which is wrong for decoding with a cache; we pass an explicit mask
      aligned to the end (or to ``offset``) instead;
    * a 3-D (heads, q_len, k_len) bias sends SDPA to its slow math kernel: it is viewed as
      (1, heads, q_len, k_len).

    q: (..., q_len, d), k, v: (..., k_len, d); bias broadcastable to (..., q_len, k_len);
    key_padding_mask: (k_len,) or (batch, k_len), True for real keys. A query that sees no
    key at all (padding) gets a zero output.
    """
    _check_qk(q, k)
    _check_v(k, v)
    q_len, k_len = q.shape[-2], k.shape[-2]
    plain = bias is None and key_padding_mask is None and offset is None
    if plain and (not causal or q_len == k_len):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    mask = visible_keys(
        q_len,
        k_len,
        causal=causal,
        offset=offset,
        key_padding_mask=key_padding_mask,
        device=q.device,
    )  # (q_len, k_len), (batch, q_len, k_len) or None
    if mask is not None and mask.dim() == 3 and q.dim() >= 4:
        mask = mask[:, None]  # (batch, 1, q_len, k_len): the same for every head
    if mask is not None:
        mask = as_batched_bias(mask, q.dim())
    if bias is None:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    bias = as_batched_bias(_check_bias(bias, q, k), q.dim()).to(q.dtype)
    if mask is not None:
        bias = bias.masked_fill(~mask, float("-inf"))
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
        d_model, num_heads = check_int("d_model", d_model, 1), check_int("num_heads", num_heads, 1)
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads})")
        if scheme is not None and not isinstance(scheme, PositionScheme):
            raise TypeError(f"scheme must be a PositionScheme or None, got {type(scheme).__name__}")
        if not isinstance(causal, bool):
            raise TypeError(f"causal must be a bool, got {causal!r}")
        self.d_model, self.num_heads, self.causal = d_model, num_heads, causal
        self.scheme = scheme if scheme is not None else PositionScheme()
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(
        self, x: Tensor, positions: Tensor | None = None, *, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """x: (batch, seq, d_model) -> (batch, seq, d_model).

        positions: the tokens' absolute positions, (seq,) or (batch, seq), default 0 … seq − 1;
        key_padding_mask: (batch, seq), True for real tokens (outputs at padded positions mean
        nothing).
        """
        check_float_tensor("x", x, 3)
        batch, seq, d_model = x.shape
        if d_model != self.d_model:
            raise ValueError(f"x must have d_model={self.d_model} features, got {d_model}")
        for name, t in (("positions", positions), ("key_padding_mask", key_padding_mask)):
            if isinstance(t, Tensor) and t.dim() == 2 and t.shape[0] not in (1, batch):
                raise ValueError(f"{name} must have batch size 1 or {batch}, got {t.shape[0]}")
        if positions is not None:
            _check_positions(positions, seq)
        q, k, v = self.qkv(x).view(batch, seq, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        at = torch.arange(seq, device=x.device) if positions is None else positions
        q, k = self.scheme.rotate(q, k, at)  # each (batch, heads, seq, head_dim)
        bias = self.scheme.bias(
            seq, seq, causal=self.causal, positions=positions, key_padding_mask=key_padding_mask
        )  # ([batch,] heads, seq, seq) with the mask folded in, or None
        if bias is not None and bias.shape[-3] != self.num_heads:
            raise ValueError(
                f"the scheme's bias has {bias.shape[-3]} heads, this layer {self.num_heads}: "
                f"build the scheme with num_heads={self.num_heads}"
            )
        if bias is None:
            y = attention_sdpa(q, k, v, causal=self.causal, key_padding_mask=key_padding_mask)
        else:
            y = attention_sdpa(q, k, v, bias=bias, causal=False)
        return self.out(y.transpose(1, 2).reshape(batch, seq, d_model))


def bias_shape(
    heads: int,
    q_len: int,
    k_len: int,
    dtype: torch.dtype,
    *,
    positions: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
) -> tuple[int, ...]:
    """The shape of a (heads, q_len, k_len) bias, with the batch axis of ``positions`` or
    ``key_padding_mask`` in front when either has one; refused above MAX_BIAS_BYTES."""
    q_len, k_len = check_int("q_len", q_len), check_int("k_len", k_len)
    if positions is not None:
        _check_positions(positions, k_len)
    if key_padding_mask is not None:
        check_key_padding_mask(key_padding_mask, k_len)
    batches = {t.shape[0] for t in (positions, key_padding_mask) if t is not None and t.dim() == 2}
    if len(batches - {1}) > 1:
        raise ValueError(
            f"positions and key_padding_mask must share their batch size, got {sorted(batches)}"
        )
    batch = (max(batches),) if batches else ()
    shape = (*batch, heads, q_len, k_len)
    check_bias_size(shape, dtype)
    check_bias_size((q_len, k_len), torch.int64, "grid of offsets")
    return shape
