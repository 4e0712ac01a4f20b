"""Right answers to notebooks 05-08, written the ways people write them in the wild.

The ALiBi authors' get_slopes, BLOOM's build_alibi_tensor, fairseq-style masks, the YaRN
authors' find_correction_range / linear_ramp_mask, Meta's apply_scaling for Llama 3.1,
Hugging Face's rope_init functions, numpy, float64 and plain Python; none imports posenc.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F

# --- 05 · ALiBi ---------------------------------------------------------------------------


def slopes_authors(n):
    """The ALiBi authors' get_slopes (returns a Python list)."""

    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio**i for i in range(n)]

    if math.log2(n).is_integer():
        return get_slopes_power_of_2(n)
    closest_power_of_2 = 2 ** math.floor(math.log2(n))
    return (
        get_slopes_power_of_2(closest_power_of_2)
        + slopes_authors(2 * closest_power_of_2)[0::2][: n - closest_power_of_2]
    )


def slopes_bloom(n):
    """BLOOM's build_alibi_tensor: torch.pow of a base over 1 … n (float32)."""
    closest = 2 ** math.floor(math.log2(n))
    base = torch.tensor(2 ** (-(2 ** -(math.log2(closest) - 3))), dtype=torch.float32)
    slopes = torch.pow(base, torch.arange(1, 1 + closest, dtype=torch.int32))
    if closest != n:
        extra_base = torch.tensor(2 ** (-(2 ** -(math.log2(2 * closest) - 3))), dtype=torch.float32)
        extra = min(closest, n - closest)
        powers = torch.arange(1, 1 + 2 * extra, 2, dtype=torch.int32)
        slopes = torch.cat([slopes, torch.pow(extra_base, powers)], dim=0)
    return slopes


def slopes_numpy(n):
    """numpy float64: the ladder 2^(−8(h+1)/m) for m = the powers of two involved."""
    m = 2 ** int(np.floor(np.log2(n)))
    first = 2.0 ** (-8.0 * np.arange(1, m + 1) / m)
    extra = 2.0 ** (-8.0 * np.arange(1, 2 * m + 1, 2) / (2 * m))[: n - m]
    return torch.from_numpy(np.concatenate([first, extra]))


def alibi_bias_fairseq(num_heads, q_len, k_len=None, causal=True):
    """fairseq-style: −m·(i − j) from the relative matrix, −inf in the future."""
    k_len = q_len if k_len is None else k_len
    m = torch.tensor(slopes_authors(num_heads))[:, None, None]
    i = torch.arange(k_len - q_len, k_len)[:, None]  # the queries are the last positions
    j = torch.arange(k_len)[None, :]
    if not causal:
        return -m * (i - j).abs()
    return (-m * (i - j)).masked_fill(j > i, float("-inf"))


def alibi_bias_loops(num_heads, q_len, k_len=None, causal=True):
    """three nested loops."""
    k_len = q_len if k_len is None else k_len
    slopes = slopes_authors(num_heads)
    out = torch.empty(num_heads, q_len, k_len)
    for h in range(num_heads):
        for i in range(q_len):
            qi = i + k_len - q_len
            for j in range(k_len):
                if causal:
                    out[h, i, j] = float("-inf") if j > qi else -slopes[h] * (qi - j)
                else:
                    out[h, i, j] = -slopes[h] * abs(qi - j)
    return out


def alibi_bias_numpy(num_heads, q_len, k_len=None, causal=True):
    """numpy float64."""
    k_len = q_len if k_len is None else k_len
    m = slopes_numpy(num_heads).numpy()[:, None, None]
    dist = np.arange(k_len - q_len, k_len)[:, None] - np.arange(k_len)[None, :]
    if causal:
        with np.errstate(invalid="ignore"):
            bias = np.where(dist >= 0, -m * dist, -np.inf)
    else:
        bias = -m * np.abs(dist)
    return torch.from_numpy(bias)


def _alibi_mask(slopes, q_len, k_len):
    dist = torch.arange(k_len - q_len, k_len)[:, None] - torch.arange(k_len)[None, :]
    return (-slopes[:, None, None] * dist).masked_fill(dist < 0, float("-inf"))


def alibi_attention_sdpa(q, k, v, slopes):
    """F.scaled_dot_product_attention with the bias (and mask) as attn_mask."""
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=_alibi_mask(slopes, q.shape[-2], k.shape[-2])
    )


def alibi_attention_manual(q, k, v, slopes):
    """scores + bias, softmax, @ V."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    return torch.softmax(scores + _alibi_mask(slopes, q.shape[-2], k.shape[-2]), dim=-1) @ v


def alibi_attention_float64(q, k, v, slopes):
    """einsum in float64."""
    scores = torch.einsum("...qd,...kd->...qk", q.double(), k.double()) / math.sqrt(q.shape[-1])
    scores = scores + _alibi_mask(slopes.double(), q.shape[-2], k.shape[-2])
    return torch.einsum("...qk,...kd->...qd", scores.softmax(-1), v.double()).float()


# --- 06 · perplexity, buckets, best extrapolator ------------------------------------------


def ppl_math(losses):
    return math.exp(losses.mean().item())


def ppl_tensor(losses):
    """a 0-dim float32 tensor."""
    return torch.exp(losses.float().mean())


def ppl_numpy(losses):
    return float(np.exp(np.mean(losses.double().numpy())))


def buckets_loop(per_position, train_len):
    out, lo = {}, 0
    for hi in (train_len, 2 * train_len, 4 * train_len, 8 * train_len):
        if hi > len(per_position):
            break
        out[f"{lo}-{hi}"] = per_position[lo:hi].mean().item()
        lo = hi
    return out


def buckets_numpy(per_position, train_len):
    v = per_position.numpy()
    ends = [0] + [m * train_len for m in (1, 2, 4, 8) if m * train_len <= len(v)]
    return {f"{a}-{b}": float(v[a:b].mean()) for a, b in pairwise(ends)}


def buckets_tensors(per_position, train_len):
    """values left as 0-dim tensors."""
    sizes = [train_len, train_len, 2 * train_len, 4 * train_len]
    out, lo = {}, 0
    for size in sizes:
        if lo + size > per_position.numel():
            break
        out[f"{lo}-{lo + size}"] = per_position[lo : lo + size].sum() / size
        lo += size
    return out


def best_min_ratio(ppl, train_len):
    ratios = {
        s: v[str(8 * train_len)] / v[str(train_len)]
        for s, v in ppl.items()
        if v.get(str(8 * train_len)) is not None
    }
    return min(ratios, key=ratios.get)


def best_sorted(ppl, train_len):
    long, short = str(8 * train_len), str(train_len)
    runnable = [(v[long] / v[short], s) for s, v in ppl.items() if v[long] is not None]
    return sorted(runnable)[0][1]


def best_loop(ppl, train_len):
    best, best_ratio = None, math.inf
    for scheme, row in ppl.items():
        long = row.get(str(8 * train_len))
        if long is None:
            continue
        ratio = long / row[str(train_len)]
        if ratio < best_ratio:
            best, best_ratio = scheme, ratio
    return best


# --- 07 · costs, rope_cached --------------------------------------------------------------


def bytes_element_size(batch, heads, seq, dim, dtype):
    size = torch.tensor([], dtype=dtype).element_size()
    return 2 * batch * heads * seq * dim * size + 2 * seq * (dim // 2) * 4


def bytes_finfo(batch, heads, seq, dim, dtype):
    """bits from finfo, tables as two float32 (seq, dim/2) arrays."""
    x = batch * heads * seq * dim * torch.finfo(dtype).bits // 8
    return x + x + 2 * (seq * dim // 2) * 4


def bytes_table(batch, heads, seq, dim, dtype):
    sizes = {torch.float64: 8, torch.float32: 4, torch.bfloat16: 2, torch.float16: 2}
    return int(batch * heads * seq * dim * sizes[dtype] * 2 + seq * dim * 4)


def flops_formula(batch, heads, q_len, k_len, head_dim):
    return 4 * batch * heads * q_len * k_len * head_dim


def flops_two_products(batch, heads, q_len, k_len, head_dim):
    qk = 2 * q_len * k_len * head_dim  # multiply-adds of Q Kᵀ, 2 FLOPs each
    av = 2 * q_len * head_dim * k_len  # A V
    return batch * heads * (qk + av)


def flops_float(batch, heads, q_len, k_len, head_dim):
    """computed as a float, returned as a whole float."""
    return float(2 * 2 * batch * heads) * q_len * k_len * head_dim


def cached_hf(x, cos, sin):
    """Hugging Face: cat(cos, cos), rotate_half, in x's dtype."""
    cos, sin = torch.cat([cos, cos], -1).to(x.dtype), torch.cat([sin, sin], -1).to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], -1) * sin


def cached_float32(x, cos, sin):
    """compute in float32, return x's dtype."""
    x1, x2 = x.float().chunk(2, -1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).to(x.dtype)


def cached_float64(x, cos, sin):
    half = x.shape[-1] // 2
    xd, c, s = x.double(), cos.double(), sin.double()
    out = torch.empty_like(xd)
    out[..., :half] = xd[..., :half] * c - xd[..., half:] * s
    out[..., half:] = xd[..., half:] * c + xd[..., :half] * s
    return out.to(x.dtype)


# --- 08 · RoPE scaling --------------------------------------------------------------------


def _inv_freq(dim, base):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def linear_hf(dim, base=10000.0, factor=1.0):
    """HF's linear rope: inv_freq / factor."""
    return _inv_freq(dim, base) / factor


def linear_positions(dim, base=10000.0, factor=1.0):
    """1 / (factor · base^(2i/d)): the squeezed position read into the frequency."""
    return 1.0 / (factor * base ** (torch.arange(0, dim, 2).float() / dim))


def linear_numpy(dim, base=10000.0, factor=1.0):
    return torch.from_numpy(base ** (-np.arange(0, dim, 2) / dim) / factor)


def ntk_python(base, factor, dim):
    return base * factor ** (dim / (dim - 2))


def ntk_numpy(base, factor, dim):
    return float(np.float64(base) * np.power(np.float64(factor), dim / (dim - 2)))


def ntk_tensor(base, factor, dim):
    """a float32 0-dim tensor."""
    return torch.tensor(base) * torch.tensor(factor) ** (dim / (dim - 2))


def dynamic_hf(base, factor, dim, seq_len, original_len):
    """HF's dynamic NTK update."""
    if seq_len > original_len:
        return base * ((factor * seq_len / original_len) - (factor - 1)) ** (dim / (dim - 2))
    return base


def dynamic_max(base, factor, dim, seq_len, original_len):
    """max(seq_len, original) makes the factor 1 below the original length."""
    s = max(seq_len, original_len)
    return base * (factor * s / original_len - factor + 1) ** (dim / (dim - 2))


def dynamic_numpy(base, factor, dim, seq_len, original_len):
    stretch = np.float64(factor) * seq_len / original_len - (factor - 1)
    return float(np.where(seq_len > original_len, base * stretch ** (dim / (dim - 2)), base))


def _find_correction_dim(num_rotations, dim, base, max_position_embeddings):
    return (dim * math.log(max_position_embeddings / (num_rotations * 2 * math.pi))) / (
        2 * math.log(base)
    )


def _find_correction_range(low_rot, high_rot, dim, base, max_position_embeddings):
    low = math.floor(_find_correction_dim(low_rot, dim, base, max_position_embeddings))
    high = math.ceil(_find_correction_dim(high_rot, dim, base, max_position_embeddings))
    return max(low, 0), min(high, dim - 1)


def _linear_ramp_mask(low, high, dim):
    if low == high:
        high += 0.001
    return torch.clamp((torch.arange(dim, dtype=torch.float32) - low) / (high - low), 0, 1)


def yarn_authors(dim, base=10000.0, factor=1.0, original_max_position_embeddings=2048):
    """The YaRN authors' _yarn_find_correction_range / _yarn_linear_ramp_mask."""
    pos_freqs = base ** (torch.arange(0, dim, 2).float() / dim)
    inv_freq_extrapolation = 1.0 / pos_freqs
    inv_freq_interpolation = 1.0 / (factor * pos_freqs)
    low, high = _find_correction_range(32, 1, dim, base, original_max_position_embeddings)
    inv_freq_mask = 1 - _linear_ramp_mask(low, high, dim // 2)
    inv_freq = inv_freq_interpolation * (1 - inv_freq_mask) + inv_freq_extrapolation * inv_freq_mask
    mscale = 1.0 if factor <= 1 else 0.1 * math.log(factor) + 1.0
    return inv_freq, mscale


def yarn_numpy(dim, base=10000.0, factor=1.0, original_max_position_embeddings=2048):
    """numpy float64, the ramp γ = 1 for slow pairs."""
    theta = base ** (-np.arange(0, dim, 2) / dim)
    low, high = _find_correction_range(32, 1, dim, base, original_max_position_embeddings)
    high = high + 0.001 if low == high else high
    gamma = np.clip((np.arange(dim // 2) - low) / (high - low), 0, 1)
    factor_att = 0.1 * np.log(factor) + 1 if factor > 1 else 1.0
    return torch.from_numpy(theta * (1 - gamma) + theta / factor * gamma), float(factor_att)


def yarn_wavelengths(dim, base=10000.0, factor=1.0, original_max_position_embeddings=2048):
    """turns over the original length decide: a pair turning L·θ/2π times."""
    theta = _inv_freq(dim, base)
    pair = torch.arange(dim // 2, dtype=torch.float32)
    low, high = _find_correction_range(32, 1, dim, base, original_max_position_embeddings)
    gamma = ((pair - low) / ((high + 0.001 if low == high else high) - low)).clamp(0, 1)
    att = 0.1 * math.log(factor) + 1 if factor > 1 else 1.0
    return theta - theta * gamma + theta * gamma / factor, att


def llama3_meta(dim, base=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                original_max_position_embeddings=8192):  # fmt: skip
    """Meta's apply_scaling: a Python loop over the frequencies."""
    freqs = _inv_freq(dim, base)
    old_context_len = original_max_position_embeddings
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor
    new_freqs = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_freq_wavelen:
            new_freqs.append(freq)
        elif wavelen > low_freq_wavelen:
            new_freqs.append(freq / factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (
                high_freq_factor - low_freq_factor
            )
            new_freqs.append((1 - smooth) * freq / factor + smooth * freq)
    return torch.tensor(new_freqs, dtype=freqs.dtype)


def llama3_hf(dim, base=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
              original_max_position_embeddings=8192):  # fmt: skip
    """Hugging Face's _compute_llama3_parameters (torch.where)."""
    inv_freq = _inv_freq(dim, base)
    old = original_max_position_embeddings
    low_freq_wavelen, high_freq_wavelen = old / low_freq_factor, old / high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * inv_freq_llama / factor + smooth * inv_freq_llama
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, inv_freq_llama)


def llama3_numpy(dim, base=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                 original_max_position_embeddings=8192):  # fmt: skip
    """numpy float64 with a clipped blend."""
    theta = base ** (-np.arange(0, dim, 2) / dim)
    s = original_max_position_embeddings * theta / (2 * np.pi)
    s = np.clip((s - low_freq_factor) / (high_freq_factor - low_freq_factor), 0, 1)
    return torch.from_numpy((1 - s) * theta / factor + s * theta)
