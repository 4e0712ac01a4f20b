"""Right answers to notebook 03's Shaw exercise, written the ways people write them in the wild.

tensor2tensor's relative attention (the authors' code: a clipped distance matrix, embedding
lookups, and the relative logits as an einsum "bhld,lmd->bhlm"), plain Python loops in
float64, numpy, and a gather of the table rows with F.embedding; none imports posenc.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _as_bhld(x):
    """(..., length, depth) -> (batch, heads, length, depth) and a function to undo it."""
    lead = x.shape[:-2]
    return x.reshape(-1, 1, *x.shape[-2:]), lambda y: y.reshape(*lead, *y.shape[-2:])


def _t2t_relative_positions_matrix(length_q, length_k, max_relative_position):
    """tensor2tensor's _generate_relative_positions_matrix: queries are the last length_q."""
    range_vec_k = torch.arange(length_k)
    range_vec_q = range_vec_k[-length_q:]
    distance_mat = range_vec_k[None, :] - range_vec_q[:, None]
    distance_mat_clipped = distance_mat.clamp(-max_relative_position, max_relative_position)
    return distance_mat_clipped + max_relative_position  # shift to non-negative rows


def shaw_tensor2tensor(q, k, v, table_k, table_v, max_relative):
    """tensor2tensor's dot_product_attention_relative with its relative logits einsum."""
    (q4, undo), (k4, _), (v4, _) = _as_bhld(q), _as_bhld(k), _as_bhld(v)
    relative_positions = _t2t_relative_positions_matrix(q.shape[-2], k.shape[-2], max_relative)
    relations_keys = F.embedding(relative_positions, table_k)  # (l, m, d)
    relations_values = F.embedding(relative_positions, table_v)  # (l, m, d)
    depth = q.shape[-1]
    logits = q4 @ k4.transpose(-1, -2) + torch.einsum("bhld,lmd->bhlm", q4, relations_keys)
    weights = torch.softmax(logits * depth**-0.5, dim=-1)
    out = weights @ v4 + torch.einsum("bhlm,lmd->bhld", weights, relations_values)
    return undo(out)


def shaw_loops(q, k, v, table_k, table_v, max_relative):
    """Equations (3)-(5) of the paper, pair by pair, in float64."""
    q64, k64, v64 = q.double(), k.double(), v.double()
    tk, tv = table_k.double(), table_v.double()
    q_len, k_len, d = q.shape[-2], k.shape[-2], q.shape[-1]
    flat_q, flat_k, flat_v = (t.reshape(-1, t.shape[-2], d) for t in (q64, k64, v64))
    out = torch.zeros_like(flat_q)
    for b in range(flat_q.shape[0]):
        for i in range(q_len):
            pos_i = i + k_len - q_len
            rows = [
                min(max(j - pos_i, -max_relative), max_relative) + max_relative
                for j in range(k_len)
            ]
            e = [flat_q[b, i] @ (flat_k[b, j] + tk[rows[j]]) / math.sqrt(d) for j in range(k_len)]
            alpha = torch.softmax(torch.stack(e), dim=0)
            for j in range(k_len):
                out[b, i] += alpha[j] * (flat_v[b, j] + tv[rows[j]])
    return out.reshape(q.shape).float()


def shaw_numpy(q, k, v, table_k, table_v, max_relative):
    """numpy, broadcasting the key and value tables over (query, key) pairs."""
    qn, kn, vn = q.numpy(), k.numpy(), v.numpy()
    q_len, k_len, d = qn.shape[-2], kn.shape[-2], qn.shape[-1]
    i = np.arange(k_len - q_len, k_len)[:, None]
    j = np.arange(k_len)[None, :]
    idx = np.clip(j - i, -max_relative, max_relative) + max_relative
    keys = kn[..., None, :, :] + table_k.numpy()[idx]  # (..., q_len, k_len, d)
    values = vn[..., None, :, :] + table_v.numpy()[idx]
    scores = np.einsum("...id,...ijd->...ij", qn, keys) / np.sqrt(d)
    scores = scores - scores.max(-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(-1, keepdims=True)
    return torch.from_numpy(np.einsum("...ij,...ijd->...id", weights, values).astype(np.float32))


def shaw_gather(q, k, v, table_k, table_v, max_relative):
    """Gather the rows of each table per pair, then multiply-and-sum by broadcasting."""
    q_len, k_len = q.shape[-2], k.shape[-2]
    rel = torch.arange(k_len)[None, :] - torch.arange(k_len - q_len, k_len)[:, None]
    rel = torch.clamp(rel, min=-max_relative, max=max_relative) + max_relative
    a_k = table_k.index_select(0, rel.flatten()).view(q_len, k_len, -1)
    a_v = table_v.index_select(0, rel.flatten()).view(q_len, k_len, -1)
    scores = (q.unsqueeze(-2) * (k.unsqueeze(-3) + a_k)).sum(-1) / math.sqrt(q.shape[-1])
    attn = scores.softmax(-1)  # (..., q_len, k_len)
    return (attn.unsqueeze(-1) * (v.unsqueeze(-3) + a_v)).sum(-2)
