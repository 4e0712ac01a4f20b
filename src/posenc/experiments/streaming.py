"""Attention sinks and a rolling KV cache (StreamingLLM, Xiao et al., 2023) on the tiny RoPE LM.

Decoding token by token, the cache keeps at most ``cache_size`` keys and values per layer:
the first ``sinks`` tokens of the stream and the most recent ``cache_size − sinks``. Keys are
cached *before* rotation, so RoPE can give them positions either

* within the cache (``reassign=True``, as StreamingLLM does): slot 0, 1, …, the query at the
  last slot, so every distance stays below cache_size, inside the trained range; or
* in the original stream (``reassign=False``): a sink kept from position 0 is then
  thousands of positions away from the query, a distance RoPE never saw in training.

Also here, the two references: ``dense_losses`` (one forward over the whole stream) and
``recompute_losses`` (for each token, a fresh forward over its last ``window`` tokens: exact
window attention, and the slowest way to get it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posenc.experiments.model import TinyLM
from posenc.rope import apply_rope


def _evict(cache: Tensor, sinks: int, cache_size: int) -> Tensor:
    """Keep the first ``sinks`` and the last ``cache_size − sinks`` entries along axis −2."""
    if cache.shape[-2] <= cache_size:
        return cache
    recent = cache_size - sinks
    return torch.cat([cache[..., :sinks, :], cache[..., -recent:, :]], dim=-2)


def _cache_positions(t: int, length: int, sinks: int, reassign: bool) -> Tensor:
    """Positions of the ``length`` cached keys at stream step t (the query is the last)."""
    if reassign or length == t + 1:
        return torch.arange(length)
    recent = length - sinks
    return torch.cat([torch.arange(sinks), torch.arange(t + 1 - recent, t + 1)])


@torch.no_grad()
def stream_losses(
    model: TinyLM, ids: Tensor, targets: Tensor, *, cache_size: int, sinks: int, reassign: bool
) -> Tensor:
    """Per-position next-token losses (batch, seq) decoding ``ids`` one token at a time with
    a rolling cache. Requires a RoPE model (the scheme must be RotaryEmbedding)."""
    if not 0 <= sinks < cache_size:
        raise ValueError(f"need 0 <= sinks < cache_size, got sinks={sinks}, {cache_size=}")
    base = model.scheme.base
    caches = [(None, None) for _ in model.blocks]  # per layer: unrotated keys, values
    losses = []
    for t in range(ids.shape[1]):
        x = model.tok(ids[:, t : t + 1])  # (batch, 1, d_model)
        for n, block in enumerate(model.blocks):
            attn = block.attn
            batch = x.shape[0]
            q, k, v = attn.qkv(block.ln_1(x)).view(batch, 1, 3, attn.num_heads, -1).unbind(2)
            q, k, v = (z.transpose(1, 2) for z in (q, k, v))  # (batch, heads, 1, head_dim)
            k_all, v_all = caches[n]
            k_all = k if k_all is None else torch.cat([k_all, k], dim=-2)
            v_all = v if v_all is None else torch.cat([v_all, v], dim=-2)
            k_all, v_all = _evict(k_all, sinks, cache_size), _evict(v_all, sinks, cache_size)
            caches[n] = (k_all, v_all)
            pos = _cache_positions(t, k_all.shape[-2], sinks, reassign)  # (cache,)
            q_rot = apply_rope(q, pos[-1:], base=base)
            k_rot = apply_rope(k_all, pos, base=base)  # (batch, heads, cache, head_dim)
            weights = torch.softmax(q_rot @ k_rot.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
            y = (weights @ v_all).transpose(1, 2).reshape(batch, 1, -1)  # (batch, 1, d_model)
            x = x + attn.out(y)
            x = x + block.mlp(block.ln_2(x))
        logits = model.head(model.ln_f(x))[:, 0]  # (batch, vocab)
        losses.append(torch.nn.functional.cross_entropy(logits, targets[:, t], reduction="none"))
    return torch.stack(losses, dim=1)


@torch.no_grad()
def dense_losses(model: TinyLM, ids: Tensor, targets: Tensor) -> Tensor:
    """One causal forward over the whole stream: (batch, seq) losses."""
    return model.token_losses(ids, targets)


@torch.no_grad()
def recompute_losses(model: TinyLM, ids: Tensor, targets: Tensor, window: int) -> Tensor:
    """Sliding window with re-computation: token t is predicted from a fresh forward over
    tokens max(0, t − window + 1) … t at positions 0 … (exact, and window× the work)."""
    out = torch.empty(ids.shape, dtype=torch.float32)
    out[:, :window] = model.token_losses(ids[:, :window], targets[:, :window])
    for t in range(window, ids.shape[1]):
        chunk = ids[:, t - window + 1 : t + 1]  # (batch, window)
        logits = model(chunk)[:, -1]  # (batch, vocab)
        out[:, t] = torch.nn.functional.cross_entropy(logits, targets[:, t], reduction="none")
    return out
