"""Right answers to notebooks 00-04, written the ways people write them in the wild.

Each is retyped from the idea (Hugging Face, Meta's Llama reference, GPT-J, the PyTorch
tutorial, d2l, the T5 port, numpy, einsum, F.scaled_dot_product_attention, float64, plain
Python loops); none imports posenc. Every one must pass its grader (test_correct_variants.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# --- 00 · self_attention ------------------------------------------------------------------


def self_attention_annotated(x, w_q, w_k, w_v, causal=False):
    """The Annotated Transformer: scores, masked_fill(mask == 0, -1e9), softmax, @ V."""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(q.size(-1))
    if causal:
        seq = x.size(-2)
        mask = torch.tril(torch.ones(seq, seq))
        scores = scores.masked_fill(mask == 0, -1e9)
    return torch.matmul(F.softmax(scores, dim=-1), v)


def self_attention_sdpa(x, w_q, w_k, w_v, causal=False):
    """PyTorch's fused kernel."""
    return F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=causal)


def self_attention_einsum64(x, w_q, w_k, w_v, causal=False):
    """einsum in float64, cast back."""
    x64, wq, wk, wv = (t.double() for t in (x, w_q, w_k, w_v))
    q = torch.einsum("...sd,dk->...sk", x64, wq)
    k = torch.einsum("...sd,dk->...sk", x64, wk)
    v = torch.einsum("...sd,dk->...sk", x64, wv)
    scores = torch.einsum("...ik,...jk->...ij", q, k) / math.sqrt(q.shape[-1])
    if causal:
        n = scores.shape[-1]
        scores = scores + torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    return torch.einsum("...ij,...jv->...iv", scores.softmax(-1), v).float()


def self_attention_numpy(x, w_q, w_k, w_v, causal=False):
    """numpy with an explicit, max-shifted softmax."""
    xn = x.numpy()
    q, k, v = xn @ w_q.numpy(), xn @ w_k.numpy(), xn @ w_v.numpy()
    scores = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        n = scores.shape[-1]
        scores = np.where(np.tri(n, dtype=bool), scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return torch.from_numpy(((e / e.sum(-1, keepdims=True)) @ v).astype(np.float32))


# --- 00 · permutation_equivariance_gap ----------------------------------------------------


def gap_index_select(attn_fn, x, perm):
    """index_select along the sequence axis."""
    a = attn_fn(x.index_select(-2, perm))
    b = attn_fn(x).index_select(-2, perm)
    return (a - b).abs().max().item()


def gap_numpy(attn_fn, x, perm):
    """numpy on the outputs."""
    a, b = attn_fn(x[..., perm, :]).numpy(), attn_fn(x)[..., perm, :].numpy()
    return float(np.abs(a - b).max())


def gap_tensor(attn_fn, x, perm):
    """returns a 0-dim tensor."""
    return torch.max(torch.abs(attn_fn(x[..., perm, :]) - attn_fn(x)[..., perm, :]))


# --- 01 · embed_with_positions, max_usable_length ----------------------------------------


def embed_gpt2(token_ids, token_table, position_table):
    """GPT-2: wte(ids) + wpe(arange(seq)) with F.embedding."""
    seq = token_ids.shape[-1]
    if seq > position_table.shape[0]:
        raise ValueError(f"sequence of {seq} is longer than the {position_table.shape[0]} rows")
    return F.embedding(token_ids, token_table) + F.embedding(torch.arange(seq), position_table)


def embed_index_select(token_ids, token_table, position_table):
    """index_select and broadcasting."""
    seq = token_ids.size(-1)
    if seq > len(position_table):
        raise ValueError("too long")
    tok = token_table.index_select(0, token_ids.reshape(-1)).reshape(*token_ids.shape, -1)
    return tok + position_table[:seq]


def embed_one_hot(token_ids, token_table, position_table):
    """one-hot rows times the table (exact: one 1 per row)."""
    seq = token_ids.shape[-1]
    if seq > position_table.shape[0]:
        raise ValueError("seq > max_len")
    one_hot = F.one_hot(token_ids, token_table.shape[0]).to(token_table.dtype)
    return one_hot @ token_table + position_table[torch.arange(seq)]


def length_shape(position_table, offset=0):
    return position_table.shape[0] - offset


def length_len(position_table, offset=0):
    return len(position_table) - offset


def length_size(position_table, offset=0):
    return int(position_table.size(0)) - int(offset)


# --- 02 · sinusoidal_encoding, offset matrix, curve ---------------------------------------


def sinusoidal_pytorch_tutorial(seq_len, dim, base=10000.0):
    """The PyTorch tutorial's PositionalEncoding (exp of a log, float32)."""
    if dim % 2:
        raise ValueError("dim must be even")
    position = torch.arange(seq_len).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, dim, 2) * (-math.log(base) / dim))
    pe = torch.zeros(seq_len, dim)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def sinusoidal_d2l(seq_len, dim, base=10000.0):
    """d2l: X = arange / pow(base, arange(0, d, 2) / d), float32."""
    if dim % 2 != 0:
        raise ValueError(f"dim must be even, got {dim}")
    X = torch.arange(seq_len, dtype=torch.float32).reshape(-1, 1) / torch.pow(
        base, torch.arange(0, dim, 2, dtype=torch.float32) / dim
    )
    P = torch.zeros((seq_len, dim))
    P[:, 0::2], P[:, 1::2] = torch.sin(X), torch.cos(X)
    return P


def sinusoidal_numpy64(seq_len, dim, base=10000.0):
    """numpy float64, then float32."""
    if dim % 2:
        raise ValueError("odd dim")
    angles = np.arange(seq_len)[:, None] / np.power(base, np.arange(0, dim, 2) / dim)
    pe = np.empty((seq_len, dim))
    pe[:, 0::2], pe[:, 1::2] = np.sin(angles), np.cos(angles)
    return torch.from_numpy(pe).float()


def sinusoidal_loops(seq_len, dim, base=10000.0):
    """plain Python loops with math.sin / math.cos."""
    if dim % 2 == 1:
        raise ValueError("dim must be even")
    rows = []
    for p in range(seq_len):
        row = []
        for i in range(dim // 2):
            angle = p / base ** (2 * i / dim)
            row += [math.sin(angle), math.cos(angle)]
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float32).reshape(seq_len, dim)


def offset_loops(offset, dim, base=10000.0):
    """2×2 blocks written one by one."""
    m = torch.zeros(dim, dim)
    for i in range(dim // 2):
        a = offset / base ** (2 * i / dim)
        c, s = math.cos(a), math.sin(a)
        m[2 * i, 2 * i], m[2 * i, 2 * i + 1] = c, s
        m[2 * i + 1, 2 * i], m[2 * i + 1, 2 * i + 1] = -s, c
    return m


def offset_block_diag(offset, dim, base=10000.0):
    """torch.block_diag of rotation blocks, float32."""
    omega = 1.0 / base ** (torch.arange(0, dim, 2).float() / dim)
    blocks = []
    for a in offset * omega:
        c, s = torch.cos(a), torch.sin(a)
        blocks.append(torch.stack([torch.stack([c, s]), torch.stack([-s, c])]))
    return torch.block_diag(*blocks)


def offset_numpy(offset, dim, base=10000.0):
    """numpy float64 with fancy indexing."""
    a = offset * base ** (-np.arange(0, dim, 2) / dim)
    m = np.zeros((dim, dim))
    e = np.arange(0, dim, 2)
    m[e, e], m[e, e + 1], m[e + 1, e], m[e + 1, e + 1] = np.cos(a), np.sin(a), -np.sin(a), np.cos(a)
    return torch.from_numpy(m)


def curve_cos_sum(dim, max_offset, base=10000.0):
    """Σ_i cos(k ω_i), float32."""
    omega = 1.0 / base ** (torch.arange(0, dim, 2).float() / dim)
    k = torch.arange(max_offset + 1).float()
    return torch.cos(k[:, None] * omega).sum(-1)


def curve_numpy(dim, max_offset, base=10000.0):
    """numpy float64."""
    k = np.arange(max_offset + 1)[:, None]
    return torch.from_numpy(np.cos(k * base ** (-np.arange(0, dim, 2) / dim)).sum(1))


def curve_table_dots(dim, max_offset, base=10000.0):
    """Build the table and take PE[0]·PE[k] literally."""
    pe = sinusoidal_pytorch_tutorial(max_offset + 1, dim, base)
    return pe @ pe[0]


# --- 03 · t5_relative_bucket, relative_bias_matrix ----------------------------------------


def t5_hf(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """Hugging Face's T5Attention._relative_position_bucket (float32 log, .to(long))."""
    relative_buckets = 0
    if bidirectional:
        num_buckets //= 2
        relative_buckets += (relative_position > 0).to(torch.long) * num_buckets
        relative_position = torch.abs(relative_position)
    else:
        relative_position = -torch.min(relative_position, torch.zeros_like(relative_position))
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    relative_position_if_large = max_exact + (
        torch.log(relative_position.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    relative_position_if_large = torch.min(
        relative_position_if_large, torch.full_like(relative_position_if_large, num_buckets - 1)
    )
    relative_buckets += torch.where(is_small, relative_position, relative_position_if_large)
    return relative_buckets


def t5_numpy(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """Mesh TensorFlow's formula in numpy float64."""
    rel = relative_position.numpy().astype(np.int64)
    ret = np.zeros_like(rel)
    n = -rel
    if bidirectional:
        num_buckets //= 2
        ret += (n < 0).astype(np.int64) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(n, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore"):
        large = max_exact + (
            np.log(np.maximum(n, 1) / max_exact)
            / np.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return torch.from_numpy(ret + np.where(n < max_exact, n, large))


def _bucket_loop(r, bidirectional, num_buckets, max_distance):
    offset, n = 0, num_buckets
    if bidirectional:
        n //= 2
        offset = n if r > 0 else 0
        d = abs(r)
    else:
        d = max(-r, 0)
    exact = n // 2
    if d < exact:
        return offset + d
    large = exact + int(math.log(d / exact) / math.log(max_distance / exact) * (n - exact))
    return offset + min(large, n - 1)


def t5_loops(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """one offset at a time, math.log."""
    flat = [
        _bucket_loop(int(r), bidirectional, num_buckets, max_distance)
        for r in relative_position.reshape(-1)
    ]
    return torch.tensor(flat, dtype=torch.long).reshape(relative_position.shape)


def bias_matrix_hf_cache(bias_table, q_len, k_len, bidirectional=True, max_distance=128):
    """HF T5's compute_bias over all k_len positions, then the last q_len query rows."""
    context = torch.arange(k_len)[:, None]
    memory = torch.arange(k_len)[None, :]
    buckets = t5_hf(
        memory - context,
        bidirectional=bidirectional,
        num_buckets=bias_table.shape[0],
        max_distance=max_distance,
    )
    values = F.embedding(buckets, bias_table)  # (k_len, k_len, heads)
    return values.permute(2, 0, 1)[:, -q_len:, :]


def bias_matrix_one_hot(bias_table, q_len, k_len, bidirectional=True, max_distance=128):
    """one-hot buckets times the table (einsum)."""
    rel = torch.arange(k_len)[None, :] - torch.arange(k_len - q_len, k_len)[:, None]
    b = t5_numpy(rel, bidirectional, bias_table.shape[0], max_distance)
    one_hot = F.one_hot(b, bias_table.shape[0]).to(bias_table.dtype)
    return torch.einsum("qkb,bh->hqk", one_hot, bias_table)


def bias_matrix_loops(bias_table, q_len, k_len, bidirectional=True, max_distance=128):
    """plain loops over heads, queries, keys."""
    heads = bias_table.shape[1]
    out = torch.empty(heads, q_len, k_len)
    for i in range(q_len):
        for j in range(k_len):
            rel = j - (i + k_len - q_len)
            b = _bucket_loop(rel, bidirectional, bias_table.shape[0], max_distance)
            out[:, i, j] = bias_table[b]
    return out


# --- 04 · RoPE ----------------------------------------------------------------------------


def freq_hf(dim, base=10000.0):
    """Hugging Face Llama: 1.0 / (base ** (arange(0, d, 2).float() / d))."""
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def freq_exp_log(dim, base=10000.0):
    """exp(−2i·ln(base)/d), float32."""
    return torch.exp(torch.arange(0, dim, 2).float() * (-math.log(base) / dim))


def freq_numpy64(dim, base=10000.0):
    """numpy float64, returned as float32."""
    return torch.from_numpy(1.0 / np.power(base, np.arange(0, dim, 2) / dim)).float()


def _rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def rope_hf(x, positions, base=10000.0):
    """Hugging Face Llama: float32 inv_freq and angles, cat(freqs, freqs), rotate_half."""
    inv_freq = freq_hf(x.shape[-1], base)
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    return (x * cos) + (_rotate_half(x) * sin)


def rope_half_complex(x, positions, base=10000.0):
    """complex numbers over the half split: z = x[i] + i·x[i + d/2], times e^{imθ}."""
    half = x.shape[-1] // 2
    angles = torch.outer(positions.float(), freq_hf(x.shape[-1], base))
    z = torch.complex(x[..., :half].float(), x[..., half:].float()) * torch.polar(
        torch.ones_like(angles), angles
    )
    return torch.cat([z.real, z.imag], -1).to(x.dtype)


def rope_half_float64(x, positions, base=10000.0):
    """float64 angles and arithmetic, cast back."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = positions.double()[:, None] * theta
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., : d // 2].double(), x[..., d // 2 :].double()
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).to(x.dtype)


def rope_half_einsum(x, positions, base=10000.0):
    """explicit 2×2 rotation matrices per (position, pair), applied with einsum."""
    d = x.shape[-1]
    a = positions.float()[:, None] * freq_exp_log(d, base)  # (seq, d/2)
    c, s = a.cos(), a.sin()
    rot = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (seq, d/2, 2, 2)
    pairs = torch.stack([x[..., : d // 2], x[..., d // 2 :]], -1).float()  # (..., seq, d/2, 2)
    out = torch.einsum("spij,...spj->...spi", rot, pairs)
    return torch.cat([out[..., 0], out[..., 1]], -1).to(x.dtype)


def rope_meta(x, positions, base=10000.0):
    """Meta's Llama reference: precompute_freqs_cis (torch.polar), view_as_complex."""
    d = x.shape[-1]
    freqs = 1.0 / (base ** (torch.arange(0, d, 2)[: (d // 2)].float() / d))
    freqs_cis = torch.polar(torch.ones(len(positions), d // 2), torch.outer(positions, freqs))
    x_ = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(x_ * freqs_cis).flatten(-2).type_as(x)


def _rotate_every_two(x):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def rope_gptj(x, positions, base=10000.0):
    """GPT-J: sinusoids repeat_interleave(2) and rotate_every_two."""
    d = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2).float() / d))
    sinusoid = torch.einsum("i,j->ij", positions.float(), inv_freq)
    sin = sinusoid.sin().repeat_interleave(2, dim=-1)
    cos = sinusoid.cos().repeat_interleave(2, dim=-1)
    return (x.float() * cos + _rotate_every_two(x.float()) * sin).to(x.dtype)


def rope_interleaved_numpy(x, positions, base=10000.0):
    """numpy float64 over (even, odd) pairs."""
    d = x.shape[-1]
    xn = x.double().numpy()
    a = positions.numpy()[:, None] * base ** (-np.arange(0, d, 2) / d)
    even, odd = xn[..., 0::2], xn[..., 1::2]
    out = np.empty_like(xn)
    out[..., 0::2] = even * np.cos(a) - odd * np.sin(a)
    out[..., 1::2] = even * np.sin(a) + odd * np.cos(a)
    return torch.from_numpy(out).to(x.dtype)


def rope_attention_hf(q, k, v, positions):
    """HF-style rotation, then a hand-written causal softmax."""
    q, k = rope_hf(q, positions), rope_hf(k, positions)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    n = scores.shape[-1]
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1) @ v


def rope_attention_sdpa(q, k, v, positions):
    """complex rotation, then F.scaled_dot_product_attention(is_causal=True)."""
    return F.scaled_dot_product_attention(
        rope_half_complex(q, positions), rope_half_complex(k, positions), v, is_causal=True
    )


def rope_attention_float64(q, k, v, positions):
    """everything in float64 with einsum, cast back."""
    rq, rk = rope_half_float64(q.double(), positions), rope_half_float64(k.double(), positions)
    scores = torch.einsum("...id,...jd->...ij", rq, rk) / math.sqrt(q.shape[-1])
    n = scores.shape[-1]
    scores = scores + torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    return torch.einsum("...ij,...jd->...id", scores.softmax(-1), v.double()).float()
