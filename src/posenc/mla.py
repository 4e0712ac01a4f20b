"""MLA's decoupled RoPE (DeepSeek-V2, 2024): why RoPE and a compressed KV cache fight.

Multi-head latent attention caches one small latent c_j (d_c numbers) per token instead of
every head's key. Head h's content key is k_j = W_UK[h] c_j, so its score is

    q_i · k_j = q_i · (W_UK[h] c_j) = (W_UK[h]ᵀ q_i) · c_j            (absorption)

and W_UK[h]ᵀ q_i is computed once per query: keys are never rebuilt from the cache.
With RoPE on the key, q_i R_iᵀ R_j W_UK[h] c_j has the position-dependent R_{j−i} *between*
q and W_UK; no fixed matrix can be folded into the query any more. DeepSeek's fix: keep the
content part position-free and add a small separate rotary part, one rotary key k^R_j shared
by all heads (cached beside c_j), one rotary query per head:

    score_h(i, j) = [q^C_{h,i} · (W_UK[h] c_j) + RoPE(q^R_{h,i}, i) · RoPE(k^R_j, j)]
                    / √(d_nope + d_rope)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posenc.rope import apply_rope


def mla_scores_decompressed(
    q_nope: Tensor, q_rope: Tensor, c_kv: Tensor, k_rope: Tensor, w_uk: Tensor, positions: Tensor
) -> Tensor:
    """The scores computed the obvious way: rebuild every head's key from the latent.

    q_nope: (heads, seq, d_nope), q_rope: (heads, seq, d_rope), c_kv: (seq, d_c),
    k_rope: (seq, d_rope) shared by all heads, w_uk: (heads, d_nope, d_c).
    Returns (heads, seq, seq) pre-softmax scores (no mask).
    """
    k_nope = torch.einsum("hnc,sc->hsn", w_uk, c_kv)  # (heads, seq, d_nope): keys rebuilt
    content = q_nope @ k_nope.transpose(-1, -2)  # (heads, seq, seq)
    rotary = apply_rope(q_rope, positions) @ apply_rope(k_rope, positions).T  # (heads, seq, seq)
    return (content + rotary) / math.sqrt(q_nope.shape[-1] + q_rope.shape[-1])


def mla_scores_absorbed(
    q_nope: Tensor, q_rope: Tensor, c_kv: Tensor, k_rope: Tensor, w_uk: Tensor, positions: Tensor
) -> Tensor:
    """The same scores with W_UK absorbed into the query: keys never leave the latent space."""
    q_latent = torch.einsum("hsn,hnc->hsc", q_nope, w_uk)  # (heads, seq, d_c) = W_UKᵀ q
    content = q_latent @ c_kv.T  # (heads, seq, seq)
    rotary = apply_rope(q_rope, positions) @ apply_rope(k_rope, positions).T
    return (content + rotary) / math.sqrt(q_nope.shape[-1] + q_rope.shape[-1])


def rope_on_content_gap(
    q_nope: Tensor, c_kv: Tensor, w_uk: Tensor, positions: Tensor
) -> tuple[float, float]:
    """What goes wrong without the decoupling, as two numbers (max |difference|):

    * rotating the *rebuilt* keys (the right RoPE scores) vs the best absorption can offer,
      a query rotated at i times keys rotated *in latent space* at j; and
    * the same comparison with no RoPE at all (absorption exact: rounding only).
    """
    k_nope = torch.einsum("hnc,sc->hsn", w_uk, c_kv)  # (heads, seq, d_nope)
    right = apply_rope(q_nope, positions) @ apply_rope(k_nope, positions).transpose(-1, -2)
    q_latent = torch.einsum("hsn,hnc->hsc", apply_rope(q_nope, positions), w_uk)  # R_i q → W_UKᵀ
    absorbed = q_latent @ apply_rope(c_kv, positions).T  # the latent turned by R_j instead
    plain = q_nope @ k_nope.transpose(-1, -2)
    plain_absorbed = torch.einsum("hsn,hnc->hsc", q_nope, w_uk) @ c_kv.T
    return (right - absorbed).abs().max().item(), (plain - plain_absorbed).abs().max().item()
