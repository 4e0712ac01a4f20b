"""Graders for notebook 04 · RoPE, rotary position embedding."""

from __future__ import annotations

import math

import torch

from posenc.grading.core import (
    Case,
    Mismatch,
    Mistakes,
    allowed_error,
    attention64,
    attention_allowed,
    call,
    exercise,
    expect_close,
    output_rounding,
    randn,
)

NOTEBOOK = "04_rope"
# What a notebook-04 answer must not reach: the library's RoPE (every exercise of the notebook).
OFF_LIMITS = (
    "posenc.rope.rope_frequencies",
    "posenc.rope.rope_cos_sin",
    "posenc.rope.rotate_half",
    "posenc.rope.rotate_interleaved",
    "posenc.rope.rope_cached",
    "posenc.rope.apply_rope",
    "posenc.rope.apply_rope_complex",
    "posenc.rope.RotaryEmbedding",
    "posenc.rope.rope_decode_step",
    "posenc.rope_scaling.rope_scaled_frequencies",
)
PRECISION_HINT = (
    "angles m·θ (or positions) computed in bfloat16/float16; at positions in the thousands "
    "they lose whole radians — compute them in float32 and cast only the result to x's dtype"
)


# --- float64 truths, independent of the library -------------------------------------------


def theta64(dim: int, base: float) -> torch.Tensor:
    """θ_i = base^(−2i/d), i = 0 … d/2 − 1, in float64.  (dim/2,)"""
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def rotate_half64(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], -1)  # [−x2, x1]


def rotate_pairs64(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([-x[..., 1::2], x[..., 0::2]], -1).flatten(-2)  # (−x1, x0), …


def rope_truth(x, positions, base=10000.0, layout="half") -> torch.Tensor:
    """RoPE in float64: x·cos(mθ) + rotate(x)·sin(mθ).  x: (..., seq, d), positions (seq,)."""
    x = x.double()
    angles = positions.double()[:, None] * theta64(x.shape[-1], base)  # (seq, d/2)
    if layout == "half":
        cos, sin, rot = angles.cos().repeat(1, 2), angles.sin().repeat(1, 2), rotate_half64
    else:
        cos, sin = angles.cos().repeat_interleave(2, -1), angles.sin().repeat_interleave(2, -1)
        rot = rotate_pairs64
    return x * cos + rot(x) * sin


def rope_allowed(x: torch.Tensor, positions: torch.Tensor) -> float:
    """The rule for a rotation: SLACK·u·(1 + max angle)·max|x|, plus the rounding of x's
    dtype on |y| ≤ |x1| + |x2| ≤ 2·max|x|."""
    big = x.detach().double().abs().max().item()
    angle = positions.double().abs().max().item()  # θ_0 = 1 is the fastest pair
    extra = output_rounding(2 * big, x.dtype) if x.dtype != torch.float32 else 0.0
    return allowed_error((1 + angle) * big) + extra


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
                theta64(dim, 10000.0) if base != 10000.0 else None
            ),
        }
    )


def _frequency_case(label, dim, base=None) -> Case:
    def run(fn):
        out = call(fn, dim) if base is None else call(fn, dim, base)
        truth = theta64(dim, base or 10000.0)
        if isinstance(out, torch.Tensor) and out.shape == (dim,):
            raise Mismatch(
                f"{label}: {dim} frequencies; there is one per pair, dim // 2 — step "
                "arange(0, dim, 2)",
                specific=True,
            )
        # base^(−2i/d) in float32: the rounded exponent costs ln(base)·u, the power a few u.
        allowed = allowed_error((3 + math.log(base or 10000.0)) * truth)
        expect_close(out, truth, label, allowed, _frequency_mistakes(dim, base or 10000.0))

    return Case(label, run)


@exercise("rope_frequencies", NOTEBOOK, OFF_LIMITS)
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
    x, positions, base, layout, *, sign=1, swap=False, shift=0, exponent=2, angle_dtype=None
):
    """RoPE with one knob turned: the models of classic mistakes (float64 unless
    ``angle_dtype`` models angles computed in a narrow dtype)."""
    dim = x.shape[-1]
    i = torch.arange(dim // 2, dtype=torch.float64)
    theta = base ** (-exponent * i / dim)
    p = (positions + shift).double()
    if angle_dtype is None:
        angles = p[:, None] * theta
    else:
        angles = (p.to(angle_dtype)[:, None] * theta.to(angle_dtype)).double()
    cos, sin = angles.cos(), angles.sin()
    if swap:
        cos, sin = sin, cos
    if layout == "half":
        cos, sin, rot = cos.repeat(1, 2), sin.repeat(1, 2), rotate_half64
    else:
        cos, sin = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
        rot = rotate_pairs64
    return x.double() * cos + sign * rot(x.double()) * sin


def _rope_mistakes(x, positions, base, layout) -> Mistakes:
    other = "interleaved" if layout == "half" else "half"
    args = (x, positions, base, layout)
    half = x.shape[-1] // 2
    only_first = x.double().clone()
    only_first[..., :half] = rope_truth(x[..., :half], positions, base, layout)
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
            "angles computed in half precision (bfloat16): at large positions m·θ loses whole "
            "radians; compute them in float32": lambda: _rope_variant(
                *args, angle_dtype=torch.bfloat16
            ),
            "angles computed in float16; compute them in float32": lambda: _rope_variant(
                *args, angle_dtype=torch.float16
            ),
        }
    )


def _rope_case(label, seed, shape, positions, base, layout, dtype=torch.float32) -> Case:
    def run(fn):
        x = randn(*shape, seed=seed).to(dtype)
        out = call(fn, x, positions) if base is None else call(fn, x, positions, base=base)
        truth = rope_truth(x, positions, base or 10000.0, layout)
        if isinstance(out, torch.Tensor) and out.dtype != dtype:
            raise Mismatch(
                f"{label}: returned {out.dtype} for {dtype} input; cast the result "
                "back to x's dtype",
                specific=True,
            )
        mistakes = _rope_mistakes(x, positions, base or 10000.0, layout)
        precision = positions.abs().max().item() >= 1000
        allowed = rope_allowed(x, positions)
        cause = PRECISION_HINT if precision else None
        expect_close(out, truth, label, allowed, mistakes, dtype=dtype, cause=cause)

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
        _rope_case(
            "bfloat16 input at positions 3000 … 3047 (precision)",
            8,
            (2, 48, 32),
            pos(3000, 3048),
            None,
            layout,
            torch.bfloat16,
        ),
        _relative_case(layout),
        _norm_case(),
    ]


@exercise("apply_rope", NOTEBOOK, OFF_LIMITS)
def apply_rope_cases() -> list[Case]:
    return _rope_cases("half")


@exercise("apply_rope_interleaved", NOTEBOOK, OFF_LIMITS)
def apply_rope_interleaved_cases() -> list[Case]:
    return _rope_cases("interleaved")


# --- rope_attention -----------------------------------------------------------------------


def rope_attention_truth(q, k, v, positions):
    """Causal attention with RoPE (half layout) on q and k only, in float64."""
    return attention64(rope_truth(q, positions), rope_truth(k, positions), v, causal=True)


def _attention_mistakes(q, k, v, positions) -> Mistakes:
    rq, rk, rv = (rope_truth(t, positions) for t in (q, k, v))
    return Mistakes(
        {
            "v was rotated too; RoPE rotates only q and k (the values carry content, not "
            "position)": lambda: attention64(rq, rk, rv, causal=True),
            "only q was rotated; rotate k by its positions as well": lambda: attention64(
                rq, k, v, causal=True
            ),
            "only k was rotated; rotate q by its positions as well": lambda: attention64(
                q, rk, v, causal=True
            ),
            "the causal mask is missing": lambda: attention64(rq, rk, v),
            "the rotation was applied to the attention output instead of to q and k": lambda: (
                rope_truth(attention64(q, k, v, causal=True), positions)
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
        truth = rope_attention_truth(q, k, v, positions)
        allowed = attention_allowed(q, k, v, angle=positions.abs().max().item())
        expect_close(out, truth, label, allowed, _attention_mistakes(q, k, v, positions))

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


@exercise("rope_attention", NOTEBOOK, OFF_LIMITS)
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


# --- rope_decode_step: token by token with a KV cache -------------------------------------

# A classic mistake, modelled by where it puts the query and each key: position(t) of the
# query at step t, position(j, t) of the key of token j (j < start: the prefilled cache, whose
# keys the grader stored correctly rotated at j).
DECODE_MISTAKES = {
    "the cached keys were rotated again at every step (each key then turns by twice its "
    "position); a key is rotated once, when it is stored, and the cache is used as it is": (
        lambda t: t,
        lambda j, t, start: 2 * j,
    ),
    "every new token was rotated at position 0 (arange(1) of the one-token chunk, or a counter "
    "reset), or every key at the query's position: either way the scores carry no position — "
    "rotate q and k at `position`, each key once, when it is stored": (
        lambda t: 0,
        lambda j, t, start: j if j < start else 0,
    ),
    "the new key was stored without its rotation (only q was rotated): rotate k at `position` "
    "before writing it to the cache": (
        lambda t: t,
        lambda j, t, start: j if j < start else 0,
    ),
    "every key was rotated at the query's position (the whole cache turned by the current "
    "position at each step); each key keeps the rotation of its own position": (
        lambda t: t,
        lambda j, t, start: (j if j < start else 0) + t,
    ),
    "the query sits one position after its own key (position + 1, e.g. the cache length read "
    "after appending): rotate q and k at the same `position`": (
        lambda t: t + 1,
        lambda j, t, start: j,
    ),
}
CACHE_MISTAKES = {
    "the cache holds the keys unrotated; store each key already rotated at its position "
    "(that is what makes the cache reusable)": lambda j: 0 * j,
    "the cache holds keys rotated one position too far (position + 1 for both q and k: the "
    "scores hide it, the cache does not)": lambda j: j + 1,
    "the cache holds keys rotated twice; rotate each key once, when it is stored": lambda j: 2 * j,
}


def _decode_model(q, k, v, start, q_pos, k_pos) -> torch.Tensor:
    """The outputs of steps start … T − 1 of a decoder that puts q and the keys where
    ``q_pos`` and ``k_pos`` say, in float64.  (..., T − start, d)"""
    rows = []
    for t in range(start, q.shape[-2]):
        q_t = rope_truth(q[..., t : t + 1, :], torch.tensor([q_pos(t)]))
        keys = rope_truth(
            k[..., : t + 1, :], torch.tensor([k_pos(j, t, start) for j in range(t + 1)])
        )
        rows.append(attention64(q_t, keys, v[..., : t + 1, :]))
    return torch.cat(rows, dim=-2)


def _decode_mistakes(q, k, v, start) -> Mistakes:
    makers = {
        hint: (lambda qp=qp, kp=kp: _decode_model(q, k, v, start, qp, kp))
        for hint, (qp, kp) in DECODE_MISTAKES.items()
    }
    makers["the rotation was applied to the attention output instead of to q and k"] = lambda: (
        rope_truth(
            _decode_model(q, k, v, start, lambda t: 0, lambda j, t, s: j if j < s else 0),
            torch.arange(start, q.shape[-2]),
        )
    )
    return Mistakes(makers)


def _run_decoder(fn, q, k, v, start, label):
    """Drive the learner's step from the grader's prefilled cache (keys 0 … start − 1 rotated
    in float64, stored in float32) to the end of the sequence; return (outputs, cache_k)."""
    cache_k = rope_truth(k[..., :start, :], torch.arange(start)).float()
    cache_v = v[..., :start, :].clone()
    outs = []
    for t in range(start, q.shape[-2]):
        one = slice(t, t + 1)
        got = call(fn, q[..., one, :], k[..., one, :], v[..., one, :], cache_k, cache_v, t)
        if not (isinstance(got, tuple) and len(got) == 3):
            raise Mismatch(
                f"{label}: return the tuple (out, cache_k, cache_v), got {type(got).__name__}",
                specific=True,
            )
        out, cache_k, cache_v = got
        for name, tensor, rows in (("out", out, 1), ("cache_k", cache_k, t + 1)):
            if not isinstance(tensor, torch.Tensor) or tensor.shape[-2] != rows:
                shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else tensor
                raise Mismatch(
                    f"{label}: at position {t}, {name} should have {rows} row(s) on axis -2 "
                    f"(..., {rows}, d), got {shape}",
                    specific=True,
                )
        outs.append(out)
    return torch.cat(outs, dim=-2), cache_k


def _decode_case(label, seed, shape, start=0) -> Case:
    def run(fn):
        q, k, v = (randn(*shape, seed=seed + i) for i in range(3))
        seq = shape[-2]
        outs, cache_k = _run_decoder(fn, q, k, v, start, label)
        truth = rope_attention_truth(q, k, v, torch.arange(seq))[..., start:, :]
        allowed = attention_allowed(q, k, v, angle=seq - 1)
        expect_close(outs, truth, label, allowed, _decode_mistakes(q, k, v, start))
        stored = rope_truth(k, torch.arange(seq))
        wrong = Mistakes(
            {
                h: (lambda p=p: rope_truth(k, torch.tensor([p(j) for j in range(seq)])))
                for h, p in CACHE_MISTAKES.items()
            }
        )
        expect_close(
            cache_k,
            stored,
            f"{label}, the keys in the cache",
            rope_allowed(k, torch.arange(seq)),
            wrong,
        )

    return Case(label, run)


@exercise("rope_decode_step", NOTEBOOK, OFF_LIMITS)
def rope_decode_step_cases() -> list[Case]:
    return [
        _decode_case("(heads 2, 6 tokens, dim 8) from an empty cache", 50, (2, 6, 8)),
        _decode_case("one pair (dim 2), 5 tokens", 60, (5, 2)),
        _decode_case("(batch 2, heads 3, dim 16), 5 cached, then 4 steps", 70, (2, 3, 9, 16), 5),
        _decode_case("(heads 2, dim 32), 60 cached, then 3 steps", 80, (2, 63, 32), 60),
        _decode_case("(heads 12, dim 64), 1 cached, then 2 steps", 90, (12, 3, 64), 1),
    ]
