"""Notebook 07 graders reject the classic mistakes and accept right answers."""

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "07_costs.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
attention_flops = SOL["attention_flops"]
rope_bytes_moved = SOL["rope_bytes_moved"]
rope_cached = SOL["rope_cached"]


def _size(dtype):
    return torch.empty((), dtype=dtype).element_size()


def bytes_read_only(b, h, s, d, dtype):
    """forgets the write"""
    return b * h * s * d * _size(dtype) + 2 * s * (d // 2) * 4


def bytes_no_tables(b, h, s, d, dtype):
    """forgets the cos/sin tables"""
    return 2 * b * h * s * d * _size(dtype)


def bytes_always_four(b, h, s, d, dtype):
    """4 bytes per element"""
    return 2 * b * h * s * d * 4 + 2 * s * (d // 2) * 4


def bytes_bits(b, h, s, d, dtype):
    """counts bits"""
    return 8 * (2 * b * h * s * d * _size(dtype) + 2 * s * (d // 2) * 4)


def bytes_full_tables(b, h, s, d, dtype):
    """tables of seq × dim"""
    return 2 * b * h * s * d * _size(dtype) + 2 * s * d * 4


def bytes_float_result(b, h, s, d, dtype):
    """returns a float"""
    return float(2 * b * h * s * d * _size(dtype)) + 0.5


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (bytes_read_only, "written too"),
        (bytes_no_tables, "tables"),
        (bytes_always_four, "element size"),
        (bytes_bits, "bits"),
        (bytes_full_tables, "dim/2"),
        (bytes_float_result, "expected an int"),
    ],
)
def test_bytes_grader_rejects(wrong, hint):
    assert_rejected("rope_bytes_moved", wrong, hint)


def flops_macs(b, h, q, k, d):
    """counts multiply-adds"""
    return 2 * b * h * q * k * d


def flops_one_matmul(b, h, q, k, d):
    """one matrix product"""
    return 2 * 2 * b * h * q * k * d // 2


def flops_no_heads(b, h, q, k, d):
    """forgets heads"""
    return 4 * b * q * k * d


def flops_square(b, h, q, k, d):
    """q_len for both"""
    return 4 * b * h * q * q * d


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (flops_macs, "multiply-add"),
        (flops_one_matmul, "two matrix products"),
        (flops_no_heads, "heads"),
        (flops_square, "q_len × k_len"),
    ],
)
def test_flops_grader_rejects(wrong, hint):
    assert_rejected("attention_flops", wrong, hint)


def _cached(
    x, cos, sin, *, sign=1, swap=False, interleaved=False, halves_swapped=False, keep_float=False
):
    xf = x.float()
    if swap:
        cos, sin = sin, cos
    if interleaved:
        c, s = cos.repeat_interleave(2, -1), sin.repeat_interleave(2, -1)
        xe, xo = xf[..., 0::2], xf[..., 1::2]
        rot = torch.stack([-xo, xe], -1).flatten(-2)
        out = xf * c + rot * s
    else:
        h = x.shape[-1] // 2
        x1, x2 = xf[..., :h], xf[..., h:]
        a, b = x1 * cos - sign * x2 * sin, x2 * cos + sign * x1 * sin
        out = torch.cat([b, a] if halves_swapped else [a, b], -1)
    return out if keep_float else out.to(x.dtype)


def _named(doc, **kw):
    def fn(x, cos, sin):
        return _cached(x, cos, sin, **kw)

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_named("sign flipped", sign=-1), "sign flipped"),
        (_named("cos/sin swapped", swap=True), "swapped"),
        (_named("interleaved pairs", interleaved=True), "interleaved"),
        (_named("halves in the wrong order", halves_swapped=True), "wrong order"),
        (_named("returns float32 for bf16", keep_float=True), "dtype"),
    ],
)
def test_rope_cached_grader_rejects(wrong, hint):
    assert_rejected("rope_cached", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    for name in ("rope_bytes_moved", "attention_flops", "rope_cached"):
        assert_accepted(name, ns[name])
