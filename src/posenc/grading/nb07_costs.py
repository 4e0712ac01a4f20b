"""Graders for notebook 07 · What does each encoding cost?"""

from __future__ import annotations

import torch

from posenc.grading.core import (
    Case,
    Mismatch,
    Mistakes,
    allowed_error,
    call,
    exercise,
    expect_close,
    output_rounding,
    randn,
)
from posenc.rope import rope_cos_sin

NOTEBOOK = "07_costs"
OFF_LIMITS = (
    "posenc.experiments.costs.rope_bytes_moved",
    "posenc.experiments.costs.attention_flops",
    "posenc.rope.rope_cached",
    "posenc.rope.apply_rope",
    "posenc.rope.apply_rope_complex",
    "posenc.rope.rotate_half",
    "posenc.rope.RotaryEmbedding",
)


def rotate_pairs64(x: torch.Tensor) -> torch.Tensor:
    return torch.stack([-x[..., 1::2], x[..., 0::2]], -1).flatten(-2)  # (−x1, x0), …


def rope_cached64(x, cos, sin) -> torch.Tensor:
    """Half-layout RoPE from given tables, in float64: [x1·cos − x2·sin, x2·cos + x1·sin]."""
    x, cos, sin = x.double(), cos.double(), sin.double()
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)


def _int_case(label: str, fn_args: tuple, expected: int, wrong: dict[int, str]) -> Case:
    def run(fn):
        out = call(fn, *fn_args)
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            out = out.item()
        if isinstance(out, float) and out.is_integer():
            out = int(out)
        if not isinstance(out, int) or isinstance(out, bool):
            raise Mismatch(f"{label}: returned {type(out).__name__}, expected an int")
        if out == expected:
            return
        if out in wrong:
            raise Mismatch(wrong[out], specific=True)
        raise Mismatch(f"{label}: returned {out:,}, expected {expected:,}")

    return Case(label, run)


def _bytes_case(label, b, h, s, d, dtype) -> Case:
    size = torch.empty((), dtype=dtype).element_size()
    x_bytes, table = b * h * s * d * size, 2 * s * (d // 2) * 4
    wrong = {
        x_bytes + table: "counted only the read of x; the result is written too (2 × x)",
        2 * x_bytes: "left out the cos and sin tables (seq × dim/2 float32 values each)",
        2 * b * h * s * d * 4 + table: "used 4 bytes per element whatever the dtype; use "
        "the element size of dtype",
        8 * (2 * x_bytes + table): "counted bits; the answer is in bytes",
        2 * x_bytes + 2 * s * d * 4: "the tables hold dim/2 values per position (one angle per "
        "pair), not dim",
        2 * s * d * size + table: "forgot the batch and head axes",
        2 * x_bytes + 2 * s * (d // 2) * size: "the cos/sin tables are float32 (4 bytes) even "
        "when x is not",
    }
    expected = 2 * x_bytes + table  # read x, write the result, read float32 cos and sin
    return _int_case(
        label, (b, h, s, d, dtype), expected, {k: v for k, v in wrong.items() if k != expected}
    )


@exercise("rope_bytes_moved", NOTEBOOK, OFF_LIMITS)
def rope_bytes_moved_cases() -> list[Case]:
    return [
        _bytes_case("(4, 16, 4096, 64) float32", 4, 16, 4096, 64, torch.float32),
        _bytes_case("(1, 32, 8192, 128) bfloat16", 1, 32, 8192, 128, torch.bfloat16),
        _bytes_case("(2, 8, 100, 32) float16", 2, 8, 100, 32, torch.float16),
        _bytes_case("(3, 1, 10, 2) float64", 3, 1, 10, 2, torch.float64),
        _bytes_case("(1, 1, 1, 2) float32", 1, 1, 1, 2, torch.float32),
    ]


def _flops_case(label, b, h, q, k, d) -> Case:
    expected = 2 * 2 * b * h * q * k * d  # Q Kᵀ and A V: q·k·d multiply-adds (2 FLOPs) each
    wrong = {
        expected // 2: "half the FLOPs: either a multiply-add was counted as 1 FLOP (it is 2) "
        "or only one of the two matrix products (Q Kᵀ and A V) was counted",
        expected // h if h > 1 else -1: "forgot the heads",
        expected // b if b > 1 else -1: "forgot the batch",
        4 * b * h * q * q * d if q != k else -1: "used q_len for both lengths; the scores are "
        "q_len × k_len",
    }
    return _int_case(
        label,
        (b, h, q, k, d),
        expected,
        {k_: v for k_, v in wrong.items() if k_ not in (expected, -1)},
    )


@exercise("attention_flops", NOTEBOOK, OFF_LIMITS)
def attention_flops_cases() -> list[Case]:
    return [
        _flops_case("(1, 1, 4, 4, 2)", 1, 1, 4, 4, 2),
        _flops_case("(2, 12, 1024, 1024, 64)", 2, 12, 1024, 1024, 64),
        _flops_case("decode: (8, 32, 1, 4096, 128)", 8, 32, 1, 4096, 128),
        _flops_case("(1, 16, 300, 500, 80)", 1, 16, 300, 500, 80),
        _flops_case("(3, 1, 7, 7, 16)", 3, 1, 7, 7, 16),
    ]


def _cached_mistakes(x, cos, sin) -> Mistakes:
    x, cos, sin = x.double(), cos.double(), sin.double()
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c2, s2 = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
    return Mistakes(
        {
            "rotation sign flipped: the first half gets x1·cos − x2·sin": lambda: torch.cat(
                [x1 * cos + x2 * sin, x2 * cos - x1 * sin], -1
            ),
            "cos and sin swapped": lambda: torch.cat(
                [x1 * sin - x2 * cos, x2 * sin + x1 * cos], -1
            ),
            "interleaved pairs; this fast path is for the half layout (x[i], x[i + d/2])": lambda: (
                x * c2 + rotate_pairs64(x) * s2
            ),
            "the halves of the result are in the wrong order": lambda: torch.cat(
                [x2 * cos + x1 * sin, x1 * cos - x2 * sin], -1
            ),
        }
    )


def _cached_case(label, seed, shape, start=0, dtype=torch.float32) -> Case:
    def run(fn):
        x = randn(*shape, seed=seed).to(dtype)
        positions = torch.arange(start, start + shape[-2])
        cos, sin = rope_cos_sin(positions, shape[-1])
        out = call(fn, x, cos, sin)
        truth = rope_cached64(x, cos, sin)
        big = x.double().abs().max().item()
        allowed = allowed_error(2 * big)  # two products and a sum of terms ≤ |x|
        if dtype != torch.float32:
            allowed += output_rounding(2 * big, dtype)  # the output's own rounding
        if isinstance(out, torch.Tensor) and out.dtype != dtype:
            raise Mismatch(
                f"{label}: returned {out.dtype} for {dtype} input; keep x's dtype", specific=True
            )
        mistakes = _cached_mistakes(x, cos, sin)
        expect_close(out, truth, label, allowed, mistakes, dtype=dtype)

    return Case(label, run)


@exercise("rope_cached", NOTEBOOK, OFF_LIMITS)
def rope_cached_cases() -> list[Case]:
    return [
        _cached_case("(seq 6, dim 8)", 0, (6, 8)),
        _cached_case("(batch 2, heads 4, seq 9, dim 16)", 1, (2, 4, 9, 16)),
        _cached_case("positions 1000 …, dim 64", 2, (3, 20, 64), start=1000),
        _cached_case("one token", 3, (1, 4)),
        _cached_case("bfloat16 x, float32 tables", 4, (2, 5, 32), dtype=torch.bfloat16),
    ]
