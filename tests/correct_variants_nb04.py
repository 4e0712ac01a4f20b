"""Right answers to notebook 04's decoding exercise (``rope_decode_step``), written the ways
people write a RoPE KV cache in the wild: Hugging Face's DynamicCache, Meta's Llama reference
(``freqs_cis[start_pos : start_pos + 1]``, complex numbers, a preallocated cache), numpy in
float64, and einsum. None imports posenc. Every one must pass its grader
(test_correct_variants.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _inv_freq(dim, base=10000.0):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


# --- Hugging Face: rotary embedding at cache_position, then DynamicCache.update --------------


def _hf_rotary(x, position_ids, dim):
    """LlamaRotaryEmbedding.forward: cos, sin of shape (1, seq, dim), float32."""
    inv_freq_expanded = _inv_freq(dim)[None, :, None].float()
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def _rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class _DynamicLayer:
    """One layer of transformers' DynamicCache: keys and values concatenated along seq."""

    def __init__(self, keys, values):
        self.keys, self.values = keys, values

    def update(self, key_states, value_states):
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        return self.keys, self.values


def decode_hf_dynamic_cache(q, k, v, cache_k, cache_v, position):
    """HF Llama: cos/sin at cache_position, apply_rotary_pos_emb, cache.update, SDPA."""
    cache_position = torch.arange(position, position + 1)
    cos, sin = _hf_rotary(q, cache_position[None, :], q.shape[-1])
    cos, sin = cos[0], sin[0]  # (1, dim): broadcast over batch and heads
    q_embed = (q * cos) + (_rotate_half(q) * sin)
    k_embed = (k * cos) + (_rotate_half(k) * sin)
    layer = _DynamicLayer(cache_k, cache_v)
    key_states, value_states = layer.update(k_embed, v)
    out = F.scaled_dot_product_attention(q_embed, key_states, value_states)
    return out, layer.keys, layer.values


# --- Meta's Llama reference: freqs_cis[start_pos : start_pos + seqlen], complex multiply -----


def _precompute_freqs_cis(dim, end, theta=10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device, dtype=torch.float32)
    freqs = torch.outer(t, freqs)
    return torch.polar(torch.ones_like(freqs), freqs)  # complex64


def decode_meta_llama(q, k, v, cache_k, cache_v, position):
    """Meta's Attention.forward: preallocated cache written at start_pos, complex rotation
    (pairs (x[i], x[i + d/2]) here, the half layout the exercise asks for)."""
    start_pos, seqlen, dim = position, 1, q.shape[-1]
    freqs_cis = _precompute_freqs_cis(dim, start_pos + 64)[start_pos : start_pos + seqlen]

    def rotary(x):
        xc = torch.complex(x[..., : dim // 2].float(), x[..., dim // 2 :].float())
        out = xc * freqs_cis
        return torch.cat([out.real, out.imag], dim=-1).type_as(x)

    xq, xk = rotary(q), rotary(k)
    shape = (*q.shape[:-2], start_pos + seqlen, dim)
    new_k, new_v = q.new_zeros(shape), q.new_zeros(shape)
    new_k[..., :start_pos, :], new_v[..., :start_pos, :] = cache_k, cache_v
    new_k[..., start_pos : start_pos + seqlen, :] = xk
    new_v[..., start_pos : start_pos + seqlen, :] = v
    keys, values = new_k[..., : start_pos + seqlen, :], new_v[..., : start_pos + seqlen, :]
    scores = torch.matmul(xq, keys.transpose(-2, -1)) / math.sqrt(dim)
    scores = F.softmax(scores.float(), dim=-1).type_as(xq)
    return torch.matmul(scores, values), keys, values


# --- numpy, float64 -------------------------------------------------------------------------


def decode_numpy64(q, k, v, cache_k, cache_v, position):
    """numpy in float64: rotate pair i = (x[i], x[i + d/2]) by position·θ_i, append, attend."""
    dim = q.shape[-1]
    theta = 10000.0 ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)
    cos, sin = np.cos(position * theta), np.sin(position * theta)

    def rotate(x):
        a, b = x[..., : dim // 2], x[..., dim // 2 :]
        return np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)

    qn, kn = rotate(q.double().numpy()), rotate(k.double().numpy())
    keys = np.concatenate([cache_k.double().numpy(), kn], axis=-2)
    values = np.concatenate([cache_v.double().numpy(), v.double().numpy()], axis=-2)
    scores = qn @ np.swapaxes(keys, -1, -2) / np.sqrt(dim)
    w = np.exp(scores - scores.max(-1, keepdims=True))
    out = (w / w.sum(-1, keepdims=True)) @ values
    return tuple(torch.from_numpy(x.astype(np.float32)) for x in (out, keys, values))


# --- einsum over a rotation matrix, float32 -------------------------------------------------


def decode_einsum_rotation_matrix(q, k, v, cache_k, cache_v, position):
    """Build R_Θ,position (block rotations on pairs (i, i + d/2)) and apply it with einsum."""
    dim, half = q.shape[-1], q.shape[-1] // 2
    angles = position * _inv_freq(dim)
    r = torch.zeros(dim, dim)
    idx = torch.arange(half)
    r[idx, idx], r[idx, idx + half] = angles.cos(), -angles.sin()
    r[idx + half, idx], r[idx + half, idx + half] = angles.sin(), angles.cos()
    q_rot = torch.einsum("ij,...sj->...si", r, q)
    keys = torch.cat([cache_k, torch.einsum("ij,...sj->...si", r, k)], dim=-2)
    values = torch.cat([cache_v, v], dim=-2)
    scores = torch.einsum("...qd,...kd->...qk", q_rot, keys) / math.sqrt(dim)
    return torch.einsum("...qk,...kd->...qd", scores.softmax(-1), values), keys, values
