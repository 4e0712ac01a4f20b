"""Graders for notebook 00 · Attention has no sense of order."""

from __future__ import annotations

import math

import torch

from posenc.attention import self_attention
from posenc.grading.core import (
    Case,
    Mismatch,
    Mistakes,
    as_float,
    attention_allowed,
    call,
    exercise,
    expect_close,
    expect_number,
    randn,
)

NOTEBOOK = "00_attention_has_no_order"
ATTENTION_ANSWERS = (
    "posenc.attention.self_attention",
    "posenc.attention.attention_reference",
    "posenc.attention.attention_sdpa",
    "posenc.attention.attention_weights",
    "posenc.attention.MultiHeadAttention",
)
# The gap's cases hand the learner attention functions built on the library's self_attention,
# so only the gap itself is off-limits there.
GAP_ANSWERS = ("posenc.attention.permutation_equivariance_gap",)


def causal_mask(q_len: int) -> torch.Tensor:
    """True where query i may see key j (j ≤ i).  (q_len, q_len)"""
    return torch.ones(q_len, q_len, dtype=torch.bool).tril()


# --- self_attention -----------------------------------------------------------------------


def _attention_variant(x, w_q, w_k, w_v, causal, *, scale=None, dim=-1, mask="tril", qk="qk"):
    """Self-attention with one knob turned the wrong way (float64): the models of classic
    mistakes; with no knob turned it is the truth."""
    q, k, v = x.double() @ w_q.double(), x.double() @ w_k.double(), x.double() @ w_v.double()
    scores = q @ k.transpose(-1, -2) if qk == "qk" else k @ q.transpose(-1, -2)
    scores = scores / (math.sqrt(q.shape[-1]) if scale is None else scale)
    seq = x.shape[-2]
    allowed = causal_mask(seq)
    if causal and mask == "tril":
        scores = scores.masked_fill(~allowed, float("-inf"))
    elif causal and mask == "strict":
        scores = scores.masked_fill(~causal_mask(seq).tril(-1), float("-inf"))
    elif causal and mask == "triu":
        scores = scores.masked_fill(~allowed.T, float("-inf"))
    weights = torch.softmax(scores, dim=dim)
    if causal and mask == "after":
        weights = weights * allowed
    return weights @ v


def _self_attention_mistakes(x, w_q, w_k, w_v, causal) -> Mistakes:
    d_model, d_k = w_q.shape
    args = (x, w_q, w_k, w_v, causal)
    m = {
        "scores are not scaled: divide Q Kᵀ by √d_k before the softmax": lambda: _attention_variant(
            *args, scale=1.0
        ),
        "scores divided by d_k; the scale is √d_k": lambda: _attention_variant(*args, scale=d_k),
        "scores divided by √d_model; the scale is √d_k (the width of q and k)": lambda: (
            _attention_variant(*args, scale=math.sqrt(d_model))
        ),
        "softmax taken over the queries (dim=-2); each query's weights over the keys "
        "must sum to 1 (dim=-1)": lambda: _attention_variant(*args, dim=-2),
        "scores transposed (K Qᵀ instead of Q Kᵀ): row i must hold query i": lambda: (
            _attention_variant(*args, qk="kq")
        ),
    }
    if causal:
        m.update(
            {
                "causal mask flipped: query i must see keys j ≤ i, not j ≥ i": lambda: (
                    _attention_variant(*args, mask="triu")
                ),
                "mask applied after the softmax: mask the scores with −inf before it, "
                "so each row still sums to 1": lambda: _attention_variant(*args, mask="after"),
                "causal=True was ignored: future tokens are still visible": lambda: (
                    _attention_variant(x, w_q, w_k, w_v, False)
                ),
                "the mask hides the diagonal too: query i must also see key i (j ≤ i)": lambda: (
                    _attention_variant(*args, mask="strict")
                ),
            }
        )
    return Mistakes(m)


def _value_case(label, seed, lead, seq, d_model, d_k, d_v, causal) -> Case:
    def run(fn):
        x = randn(*lead, seq, d_model, seed=seed)
        w_q = randn(d_model, d_k, seed=seed + 1) / math.sqrt(d_model) * 2
        w_k = randn(d_model, d_k, seed=seed + 2) / math.sqrt(d_model) * 2
        w_v = randn(d_model, d_v, seed=seed + 3)
        out = call(fn, x, w_q, w_k, w_v, causal=causal)
        truth = _attention_variant(x, w_q, w_k, w_v, causal)
        q, k, v = x @ w_q, x @ w_k, x @ w_v
        allowed = attention_allowed(q, k, v, width=d_model)
        if isinstance(out, torch.Tensor) and out.shape[-2:] == (seq, seq) and d_v != seq:
            raise Mismatch(
                f"{label}: output has shape {tuple(out.shape)} — that is the attention "
                "weights; multiply them by V",
                specific=True,
            )
        mistakes = _self_attention_mistakes(x, w_q, w_k, w_v, causal)
        expect_close(out, truth, label, allowed, mistakes)

    return Case(label, run)


def _equivariance_case(seed: int) -> Case:
    label = "shuffling the tokens shuffles the outputs the same way (causal=False)"

    def run(fn):
        x = randn(9, 6, seed=seed)
        w_q, w_k, w_v = (randn(6, 4, seed=seed + i) for i in (1, 2, 3))
        perm = torch.randperm(9, generator=torch.Generator().manual_seed(seed))
        gap = (call(fn, x[perm], w_q, w_k, w_v) - call(fn, x, w_q, w_k, w_v)[perm]).abs().max()
        if gap > 1e-4:
            raise Mismatch(
                f"{label}: broken (gap {gap:.3g}); without a mask nothing in attention "
                "may depend on where a token stands",
                specific=True,
            )

    return Case(label, run)


def _causality_case(seed: int) -> Case:
    label = "with causal=True, output i ignores the tokens after i"

    def run(fn):
        x = randn(8, 5, seed=seed)
        w_q, w_k, w_v = (randn(5, 3, seed=seed + i) for i in (1, 2, 3))
        changed = x.clone()
        changed[5:] = randn(3, 5, seed=seed + 9)  # rewrite the future of position 4
        before = call(fn, x, w_q, w_k, w_v, causal=True)[:5]
        after = call(fn, changed, w_q, w_k, w_v, causal=True)[:5]
        if not torch.allclose(before, after, atol=1e-5):
            raise Mismatch(
                f"{label}: changing tokens 5..7 changed outputs 0..4 — the future leaks in",
                specific=True,
            )

    return Case(label, run)


@exercise("self_attention", NOTEBOOK, ATTENTION_ANSWERS)
def self_attention_cases() -> list[Case]:
    return [
        _value_case("one token", 0, (), 1, 4, 2, 3, False),
        _value_case("seq 5, d_model 6 → d_k 3, d_v 2", 10, (), 5, 6, 3, 2, False),
        _value_case("batch (2,), seq 7, d_model 8 → d_k 4, d_v 5", 20, (2,), 7, 8, 4, 5, False),
        _value_case("causal, seq 6, d_model 8 → d_k 4, d_v 3", 30, (), 6, 8, 4, 3, True),
        _value_case("causal, batch (2, 3), seq 5, d_k 2", 40, (2, 3), 5, 6, 2, 4, True),
        _value_case("causal, one token", 50, (), 1, 3, 3, 3, True),
        _equivariance_case(60),
        _causality_case(70),
    ]


# --- permutation_equivariance_gap ---------------------------------------------------------


def _order_aware_attention(seed: int):
    """An attention that *does* know positions (a position signal is added to x first)."""
    w_q, w_k, w_v = (randn(4, 4, seed=seed + i) for i in range(3))

    def attn(x):
        positions = torch.arange(x.shape[-2], dtype=x.dtype)[:, None]  # (seq, 1)
        signal = torch.sin(positions * torch.tensor([1.0, 0.5, 0.25, 0.125]))  # (seq, 4)
        return self_attention(x + signal, w_q, w_k, w_v)

    return attn


def _plain_attention(seed: int, causal: bool = False):
    w_q, w_k, w_v = (randn(4, 4, seed=seed + i) for i in range(3))
    return lambda x: self_attention(x, w_q, w_k, w_v, causal=causal)


def _gap_variants(attn_fn, x, perm) -> dict[str, float]:
    """What the classic mistakes of this exercise return, keyed by their hint."""
    inverse = torch.argsort(perm)
    diff = attn_fn(x[..., perm, :]) - attn_fn(x)[..., perm, :]
    variants = {
        "compared attn(x[perm]) with the unshuffled attn(x); shuffle the output too": (
            attn_fn(x[..., perm, :]) - attn_fn(x)
        )
        .abs()
        .max(),
        "shuffled the output with the inverse permutation; use the same perm on both sides": (
            attn_fn(x[..., perm, :]) - attn_fn(x)[..., inverse, :]
        )
        .abs()
        .max(),
        "took the max of the signed difference; take the max of its absolute value": diff.max(),
        "averaged the differences; the gap is the largest absolute difference": diff.abs().mean(),
        "summed the differences; the gap is the largest absolute difference": diff.abs().sum(),
    }
    return {hint: float(v) for hint, v in variants.items()}


def _gap_case(label, attn_fn, x, perm) -> Case:
    def run(fn):
        out = as_float(call(fn, attn_fn, x, perm.clone()), label)
        # The gap of float32 attention outputs: every correct answer subtracts the same
        # two float32 tensors, so they agree to the last bit (plus a 1e-4 relative margin).
        expected = float((attn_fn(x[..., perm, :]) - attn_fn(x)[..., perm, :]).abs().max())
        if abs(out) < 1e-6 and abs(expected) >= 1e-5:
            # Shuffling the batch axis (x[perm]) also gives 0: rows of a batch never interact.
            raise Mismatch(
                f"{label}: returned 0, but this function does depend on order — measure the "
                "gap on the sequence axis (-2), not the batch axis (0), and do not assume it",
                specific=True,
            )
        expect_number(
            out, expected, label, _gap_variants(attn_fn, x, perm), rel_tol=1e-4, abs_tol=1e-5
        )

    return Case(label, run)


@exercise("permutation_equivariance_gap", NOTEBOOK, GAP_ANSWERS)
def permutation_equivariance_gap_cases() -> list[Case]:
    cycle = torch.tensor([1, 2, 3, 4, 0])  # a 5-cycle: its inverse differs from it
    g = torch.Generator().manual_seed(5)
    return [
        _gap_case("plain attention: gap ≈ 0", _plain_attention(1), randn(5, 4, seed=2), cycle),
        _gap_case("order-aware attention", _order_aware_attention(3), randn(5, 4, seed=4), cycle),
        _gap_case(
            "order-aware attention, batch of 5, seq 5",
            _order_aware_attention(6),
            randn(5, 5, 4, seed=7),
            torch.randperm(5, generator=g),
        ),
        _gap_case(
            "causal attention (the mask itself knows order)",
            _plain_attention(8, causal=True),
            randn(2, 7, 4, seed=9),
            torch.tensor([3, 4, 5, 6, 0, 1, 2]),
        ),
        _gap_case(
            "order-aware attention, seq 12",
            _order_aware_attention(10),
            randn(12, 4, seed=11),
            torch.randperm(12, generator=g),
        ),
    ]
