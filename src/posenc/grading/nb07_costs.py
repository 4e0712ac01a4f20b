"""Graders for notebook 07 · What does each encoding cost?"""

from __future__ import annotations

import torch

from posenc.experiments.costs import attention_flops, rope_bytes_moved
from posenc.grading.core import Case, Mismatch, Mistakes, call, exercise, expect_tensor, randn
from posenc.rope import rope_cached, rope_cos_sin, rotate_interleaved

NOTEBOOK = "07_costs"


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
    expected = rope_bytes_moved(b, h, s, d, dtype)
    return _int_case(
        label, (b, h, s, d, dtype), expected, {k: v for k, v in wrong.items() if k != expected}
    )


@exercise("rope_bytes_moved", NOTEBOOK)
def rope_bytes_moved_cases() -> list[Case]:
    return [
        _bytes_case("(4, 16, 4096, 64) float32", 4, 16, 4096, 64, torch.float32),
        _bytes_case("(1, 32, 8192, 128) bfloat16", 1, 32, 8192, 128, torch.bfloat16),
        _bytes_case("(2, 8, 100, 32) float16", 2, 8, 100, 32, torch.float16),
        _bytes_case("(3, 1, 10, 2) float64", 3, 1, 10, 2, torch.float64),
        _bytes_case("(1, 1, 1, 2) float32", 1, 1, 1, 2, torch.float32),
    ]


def _flops_case(label, b, h, q, k, d) -> Case:
    expected = attention_flops(b, h, q, k, d)
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


@exercise("attention_flops", NOTEBOOK)
def attention_flops_cases() -> list[Case]:
    return [
        _flops_case("(1, 1, 4, 4, 2)", 1, 1, 4, 4, 2),
        _flops_case("(2, 12, 1024, 1024, 64)", 2, 12, 1024, 1024, 64),
        _flops_case("decode: (8, 32, 1, 4096, 128)", 8, 32, 1, 4096, 128),
        _flops_case("(1, 16, 300, 500, 80)", 1, 16, 300, 500, 80),
        _flops_case("(3, 1, 7, 7, 16)", 3, 1, 7, 7, 16),
    ]


def _cached_mistakes(x, cos, sin) -> Mistakes:
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
                x * c2 + rotate_interleaved(x) * s2
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
        expected = rope_cached(x.float(), cos, sin)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        if isinstance(out, torch.Tensor) and out.dtype != dtype:
            raise Mismatch(
                f"{label}: returned {out.dtype} for {dtype} input; keep x's dtype", specific=True
            )
        expect_tensor(
            out.float() if isinstance(out, torch.Tensor) else out,
            expected,
            label,
            _cached_mistakes(x.float(), cos, sin),
            atol=tol,
            rtol=tol,
        )

    return Case(label, run)


@exercise("rope_cached", NOTEBOOK)
def rope_cached_cases() -> list[Case]:
    return [
        _cached_case("(seq 6, dim 8)", 0, (6, 8)),
        _cached_case("(batch 2, heads 4, seq 9, dim 16)", 1, (2, 4, 9, 16)),
        _cached_case("positions 1000 …, dim 64", 2, (3, 20, 64), start=1000),
        _cached_case("one token", 3, (1, 4)),
        _cached_case("bfloat16 x, float32 tables", 4, (2, 5, 32), dtype=torch.bfloat16),
    ]
