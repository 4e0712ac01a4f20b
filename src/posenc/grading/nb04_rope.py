"""Graders for notebook 04 · RoPE, rotary position embedding."""

from __future__ import annotations

import torch

from posenc.attention import attention_reference
from posenc.grading.core import Case, Mismatch, Mistakes, call, exercise, expect_tensor, randn
from posenc.rope import apply_rope, rope_frequencies, rotate_half, rotate_interleaved

NOTEBOOK = "04_rope"


# --- rope_frequencies ---------------------------------------------------------------------


def _frequency_mistakes(dim, base) -> Mistakes:
    i = torch.arange(dim // 2, dtype=torch.float64)
    return Mistakes(
        {
            "exponent i/d: use arange(0, dim, 2) (that is 2i), not arange(dim)": lambda: (
                base ** (-i / dim)
            ).float(),
            "positive exponent: θ_i = base^(−2i/d) gets *slower* with i": lambda: (
                base ** (2 * i / dim)
            ).float(),
            "linearly spaced frequencies; RoPE uses a geometric ladder base^(−2i/d)": lambda: (
                1 - 2 * i / dim
            ).float(),
            "the base argument was ignored (10000 used)": lambda: (
                rope_frequencies(dim) if base != 10000.0 else None
            ),
        }
    )


def _frequency_case(label, dim, base=None) -> Case:
    def run(fn):
        out = call(fn, dim) if base is None else call(fn, dim, base)
        expected = rope_frequencies(dim, base or 10000.0)
        if isinstance(out, torch.Tensor) and out.shape == (dim,):
            raise Mismatch(
                f"{label}: {dim} frequencies; there is one per pair, dim // 2 — step "
                "arange(0, dim, 2)",
                specific=True,
            )
        expect_tensor(
            out, expected, label, _frequency_mistakes(dim, base or 10000.0), atol=1e-7, rtol=1e-5
        )

    return Case(label, run)


@exercise("rope_frequencies", NOTEBOOK)
def rope_frequencies_cases() -> list[Case]:
    return [
        _frequency_case("dim 2", 2),
        _frequency_case("dim 8", 8),
        _frequency_case("dim 64", 64),
        _frequency_case("dim 128, base 500000 (Llama 3)", 128, 500000.0),
        _frequency_case("dim 16, base 100", 16, 100.0),
    ]


# --- apply_rope (half) and apply_rope_interleaved ------------------------------------------


def _rope_variant(
    x,
    positions,
    base,
    layout,
    *,
    sign=1,
    swap=False,
    shift=0,
    exponent=2,
    angle_dtype=torch.float32,
):
    """RoPE with one knob turned: the models of classic mistakes."""
    dim = x.shape[-1]
    i = torch.arange(dim // 2, dtype=torch.float64)
    theta = (base ** (-exponent * i / dim)).float()
    angles = ((positions + shift).to(angle_dtype)[..., None] * theta.to(angle_dtype)).float()
    cos, sin = angles.cos(), angles.sin()
    if swap:
        cos, sin = sin, cos
    if layout == "half":
        cos, sin, rot = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1), rotate_half
    else:
        cos, sin = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
        rot = rotate_interleaved
    return x * cos + sign * rot(x) * sin


def _rope_mistakes(x, positions, base, layout) -> Mistakes:
    other = "interleaved" if layout == "half" else "half"
    args = (x, positions, base, layout)
    half = x.shape[-1] // 2
    only_first = x.clone()
    only_first[..., :half] = apply_rope(
        x[..., :half].contiguous(), positions, base=base, layout=layout
    )
    return Mistakes(
        {
            f"{other} layout; this exercise pairs features as in the "
            + (
                "'half' layout (x[i], x[i + d/2]), Hugging Face's rotate_half"
                if layout == "half"
                else "interleaved layout (x[2i], x[2i+1]), RoFormer/Meta"
            ): lambda: _rope_variant(x, positions, base, other),
            "rotation sign flipped (rotate_half must give [−x2, x1]): that turns by −mθ": lambda: (
                _rope_variant(*args, sign=-1)
            ),
            "cos and sin swapped: x_rot = x·cos(mθ) + rotate(x)·sin(mθ)": lambda: _rope_variant(
                *args, swap=True
            ),
            "positions off by one: the first token sits at position positions[0]": lambda: (
                _rope_variant(*args, shift=1)
            ),
            "frequencies use exponent i/d; θ_i = base^(−2i/d)": lambda: _rope_variant(
                *args, exponent=1
            ),
            "only the first half of the features was rotated (as a d/2-dim RoPE); rotate all "
            "d/2 pairs": lambda: only_first,
            "angles computed in half precision: at large positions m·θ loses whole radians; "
            "compute them in float32": lambda: _rope_variant(*args, angle_dtype=torch.bfloat16),
            "angles computed in float16; compute them in float32": lambda: _rope_variant(
                *args, angle_dtype=torch.float16
            ),
        }
    )


def _rope_case(label, seed, shape, positions, base, layout, dtype=torch.float32) -> Case:
    def run(fn):
        x = randn(*shape, seed=seed).to(dtype)
        out = call(fn, x, positions) if base is None else call(fn, x, positions, base=base)
        expected = apply_rope(x, positions, base=base or 10000.0, layout=layout)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        mistakes = _rope_mistakes(x.float(), positions, base or 10000.0, layout)
        if isinstance(out, torch.Tensor) and out.dtype != dtype:
            raise Mismatch(
                f"{label}: returned {out.dtype} for {dtype} input; cast the result "
                "back to x's dtype",
                specific=True,
            )
        expect_tensor(
            out.float() if isinstance(out, torch.Tensor) else out,
            expected.float(),
            label,
            mistakes,
            atol=tol,
            rtol=tol,
        )

    return Case(label, run)


def _relative_case(layout) -> Case:
    label = "q_m · k_n depends only on m − n (both shifted by 97)"

    def run(fn):
        q, k = randn(1, 16, seed=5), randn(1, 16, seed=6)
        for m, n in [(10, 3), (0, 7), (250, 250)]:
            s = call(fn, q, torch.tensor([m])) @ call(fn, k, torch.tensor([n])).T
            s97 = call(fn, q, torch.tensor([m + 97])) @ call(fn, k, torch.tensor([n + 97])).T
            if not torch.allclose(s, s97, atol=1e-4):
                raise Mismatch(
                    f"{label}: it changed for m={m}, n={n}; are q and k rotated by "
                    "the same pairing and angles?"
                )

    return Case(label, run)


def _norm_case() -> Case:
    label = "rotation preserves the norm of every vector"

    def run(fn):
        x = randn(3, 5, 12, seed=7)
        out = call(fn, x, torch.arange(5) * 13)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise Mismatch(f"{label}: expected shape {tuple(x.shape)}")
        if not torch.allclose(out.norm(dim=-1), x.norm(dim=-1), atol=1e-4):
            raise Mismatch(
                f"{label}: norms changed; cos and sin must use the same angle for "
                "both features of a pair",
                specific=True,
            )

    return Case(label, run)


def _rope_cases(layout) -> list[Case]:
    pos = torch.arange
    return [
        _rope_case("one token at position 0 (no rotation)", 0, (1, 4), pos(1), None, layout),
        _rope_case("(seq 6, dim 8)", 1, (6, 8), pos(6), None, layout),
        _rope_case("(batch 2, heads 12, seq 5, dim 16)", 2, (2, 12, 5, 16), pos(5), None, layout),
        _rope_case("positions 1000 … 1019, dim 32", 3, (20, 32), pos(1000, 1020), None, layout),
        _rope_case("base 500000, dim 64", 4, (2, 7, 64), pos(7), 500000.0, layout),
        _rope_case(
            "positions 4000 … 4009 (precision)", 5, (10, 128), pos(4000, 4010), None, layout
        ),
        _rope_case("bfloat16 input", 6, (2, 9, 16), pos(9), None, layout, torch.bfloat16),
        _relative_case(layout),
        _norm_case(),
    ]


@exercise("apply_rope", NOTEBOOK)
def apply_rope_cases() -> list[Case]:
    return _rope_cases("half")


@exercise("apply_rope_interleaved", NOTEBOOK)
def apply_rope_interleaved_cases() -> list[Case]:
    return _rope_cases("interleaved")


# --- rope_attention -----------------------------------------------------------------------


def rope_attention_reference(q, k, v, positions):
    """Causal attention with RoPE (half layout) on q and k only.  (..., seq, d) each."""
    q, k = apply_rope(q, positions), apply_rope(k, positions)
    return attention_reference(q, k, v, causal=True)


def _attention_mistakes(q, k, v, positions) -> Mistakes:
    rq, rk, rv = (apply_rope(t, positions) for t in (q, k, v))
    return Mistakes(
        {
            "v was rotated too; RoPE rotates only q and k (the values carry content, not "
            "position)": lambda: attention_reference(rq, rk, rv, causal=True),
            "only q was rotated; rotate k by its positions as well": lambda: attention_reference(
                rq, k, v, causal=True
            ),
            "only k was rotated; rotate q by its positions as well": lambda: attention_reference(
                q, rk, v, causal=True
            ),
            "the causal mask is missing": lambda: attention_reference(rq, rk, v),
            "the rotation was applied to the attention output instead of to q and k": lambda: (
                apply_rope(attention_reference(q, k, v, causal=True), positions)
            ),
        }
    )


def _attention_case(label, seed, shape, positions) -> Case:
    def run(fn):
        q, k, v = (
            randn(*shape, seed=seed),
            randn(*shape, seed=seed + 1),
            randn(*shape, seed=seed + 2),
        )
        out = call(fn, q, k, v, positions)
        expected = rope_attention_reference(q, k, v, positions)
        expect_tensor(out, expected, label, _attention_mistakes(q, k, v, positions))

    return Case(label, run)


def _shift_invariance_case() -> Case:
    label = "shifting every position by 97 leaves the output unchanged"

    def run(fn):
        q, k, v = randn(2, 6, 16, seed=40), randn(2, 6, 16, seed=41), randn(2, 6, 16, seed=42)
        a = call(fn, q, k, v, torch.arange(6))
        b = call(fn, q, k, v, torch.arange(6) + 97)
        if not torch.allclose(a, b, atol=1e-4):
            raise Mismatch(
                f"{label}: it changed — something besides q and k depends on the absolute position",
                specific=True,
            )

    return Case(label, run)


@exercise("rope_attention", NOTEBOOK)
def rope_attention_cases() -> list[Case]:
    return [
        _attention_case("(seq 5, dim 8)", 0, (5, 8), torch.arange(5)),
        _attention_case("(heads 4, seq 9, dim 16)", 10, (4, 9, 16), torch.arange(9)),
        _attention_case(
            "(batch 2, heads 3, seq 7, dim 32), positions 100 …",
            20,
            (2, 3, 7, 32),
            torch.arange(100, 107),
        ),
        _attention_case("one token", 30, (1, 4), torch.arange(1)),
        _shift_invariance_case(),
    ]
