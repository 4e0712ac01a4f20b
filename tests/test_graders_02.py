"""Notebook 02 graders reject the classic mistakes and accept right answers."""

import math

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "02_sinusoidal.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
relative_dot_product_curve = SOL["relative_dot_product_curve"]
sinusoidal_encoding = SOL["sinusoidal_encoding"]
sinusoidal_offset_matrix = SOL["sinusoidal_offset_matrix"]


def _table(
    seq_len,
    dim,
    base=10000.0,
    *,
    first="sin",
    exponent=2,
    start=0,
    mul=False,
    layout="interleaved",
    dtype=torch.float32,
    transpose=False,
):
    """A learner-style float32 implementation with switches for each classic mistake."""
    if dim % 2:
        raise ValueError("odd dim")
    pos = torch.arange(start, start + seq_len, dtype=dtype)[:, None]
    i = torch.arange(dim // 2, dtype=dtype)
    div = torch.tensor(base, dtype=dtype) ** (exponent * i / dim)
    angle = pos * div if mul else pos / div
    s, c = torch.sin(angle).float(), torch.cos(angle).float()
    if first == "cos":
        s, c = c, s
    if layout == "interleaved":
        pe = torch.stack([s, c], dim=-1).reshape(seq_len, dim)
    else:
        pe = torch.cat([s, c], dim=-1)
    return pe.T if transpose else pe


WRONG_ENCODINGS = {
    "sin and cos swapped": (lambda n, d, b=10000.0: _table(n, d, b, first="cos"), "swapped"),
    "exponent i/d": (lambda n, d, b=10000.0: _table(n, d, b, exponent=1), "i/d"),
    "exponent 4i/d": (lambda n, d, b=10000.0: _table(n, d, b, exponent=4), "4i/d"),
    "base as multiplication": (lambda n, d, b=10000.0: _table(n, d, b, mul=True), "multiplic"),
    "positions from 1": (lambda n, d, b=10000.0: _table(n, d, b, start=1), "start at 1"),
    "concatenated layout": (lambda n, d, b=10000.0: _table(n, d, b, layout="cat"), "concatenated"),
    "transposed": (lambda n, d, b=10000.0: _table(n, d, b, transpose=True), "transpose"),
    "float16": (lambda n, d, b=10000.0: _table(n, d, b, dtype=torch.float16), "float16"),
    "returns float64": (lambda n, d, b=10000.0: _table(n, d, b).double(), "dtype"),
    "ignores base": (lambda n, d, b=10000.0: _table(n, d), "base argument was ignored"),
}


def base_times_pair_index(seq_len, dim, base=10000.0):
    """p / (base · 2i/d)"""
    if dim % 2:
        raise ValueError
    pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
    two_i = torch.arange(0, dim, 2, dtype=torch.float32)
    angle = pos / (base * two_i / dim)
    return torch.stack([torch.sin(angle), torch.cos(angle)], -1).reshape(seq_len, dim)


def accepts_odd_dim(seq_len, dim, base=10000.0):
    """silently drops the last column for odd dim"""
    return _table(seq_len, dim - dim % 2, base) if dim % 2 == 0 else torch.zeros(seq_len, dim)


@pytest.mark.parametrize("name", list(WRONG_ENCODINGS))
def test_sinusoidal_encoding_grader_rejects(name):
    wrong, hint = WRONG_ENCODINGS[name]
    wrong.__doc__ = name
    assert_rejected("sinusoidal_encoding", wrong, hint)


def test_sinusoidal_grader_rejects_base_times_index_and_odd_dim():
    assert_rejected("sinusoidal_encoding", base_times_pair_index, "multiplication")
    assert_rejected("sinusoidal_encoding", accepts_odd_dim, "odd dim")


def test_learner_float32_implementation_passes():
    """A correct float32 answer (the usual exp/log form) is not penalised for rounding."""

    def float32_answer(seq_len, dim, base=10000.0):
        if dim % 2:
            raise ValueError("dim must be even")
        pos = torch.arange(seq_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(base) / dim))
        pe = torch.zeros(seq_len, dim)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
        return pe

    assert_accepted("sinusoidal_encoding", float32_answer)


# --- offset matrix ------------------------------------------------------------------------


def _offset(
    offset, dim, base=10000.0, *, sign=1, layout="interleaved", swap=False, shift=0, same_freq=False
):
    i = torch.arange(dim // 2, dtype=torch.float64)
    omega = base ** (-2 * i / dim)
    if same_freq:
        omega = torch.ones_like(omega)
    a = (offset + shift) * omega
    c, s = torch.cos(a), sign * torch.sin(a)
    m = torch.zeros(dim, dim, dtype=torch.float64)
    for j in range(dim // 2):
        r, q = (2 * j, 2 * j + 1) if layout == "interleaved" else (j, j + dim // 2)
        block = [[s[j], c[j]], [-c[j], s[j]]] if swap else [[c[j], s[j]], [-s[j], c[j]]]
        m[r, r], m[r, q], m[q, r], m[q, q] = block[0][0], block[0][1], block[1][0], block[1][1]
    return m.float()


def offset_wrong_sign(offset, dim, base=10000.0):
    """sine terms with the wrong sign"""
    return _offset(offset, dim, base, sign=-1)


def offset_transposed(offset, dim, base=10000.0):
    """returns M transposed"""
    return _offset(offset, dim, base).T


def offset_concatenated(offset, dim, base=10000.0):
    """blocks for the [sin | cos] layout"""
    return _offset(offset, dim, base, layout="cat")


def offset_cos_sin_swapped(offset, dim, base=10000.0):
    """cos and sin swapped in each block"""
    return _offset(offset, dim, base, swap=True)


def offset_plus_one(offset, dim, base=10000.0):
    """uses offset + 1"""
    return _offset(offset, dim, base, shift=1)


def offset_same_frequency(offset, dim, base=10000.0):
    """ω = 1 for every pair"""
    return _offset(offset, dim, base, same_freq=True)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (offset_wrong_sign, "wrong sign"),
        (offset_transposed, "wrong sign"),
        (offset_concatenated, "concatenated"),
        (offset_cos_sin_swapped, "swapped"),
        (offset_plus_one, "k+1"),
        (offset_same_frequency, "frequency of pair 0"),
    ],
)
def test_offset_matrix_grader_rejects(wrong, hint):
    assert_rejected("sinusoidal_offset_matrix", wrong, hint)


# --- relative dot-product curve -----------------------------------------------------------


def _omega(dim, base):
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def curve_sin(dim, max_offset, base=10000.0):
    """sums sin instead of cos"""
    k = torch.arange(max_offset + 1, dtype=torch.float64)[:, None]
    return torch.sin(k * _omega(dim, base)).sum(-1).float()


def curve_normalised(dim, max_offset, base=10000.0):
    """cosine similarity instead of dot product"""
    k = torch.arange(max_offset + 1, dtype=torch.float64)[:, None]
    return torch.cos(k * _omega(dim, base)).mean(-1).float()


def curve_off_by_one(dim, max_offset, base=10000.0):
    """k = 0 … max_offset − 1"""
    k = torch.arange(max_offset, dtype=torch.float64)[:, None]
    return torch.cos(k * _omega(dim, base)).sum(-1).float()


def curve_from_one(dim, max_offset, base=10000.0):
    """k = 1 … max_offset + 1"""
    k = torch.arange(1, max_offset + 2, dtype=torch.float64)[:, None]
    return torch.cos(k * _omega(dim, base)).sum(-1).float()


def curve_double(dim, max_offset, base=10000.0):
    """sums over all d columns of cos(k ω) repeated"""
    k = torch.arange(max_offset + 1, dtype=torch.float64)[:, None]
    return torch.cos(k * _omega(dim, base).repeat(2)).sum(-1).float()


def curve_from_table_wrong_rows(dim, max_offset, base=10000.0):
    """PE[1]·PE[k], with the encoding's row 1 as the anchor but offsets counted from 0"""
    pe = sinusoidal_encoding(max_offset + 2, dim, base)
    return (pe[1] * pe[: max_offset + 1]).sum(-1)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (curve_sin, "sin"),
        (curve_normalised, "normalised"),
        (curve_off_by_one, "max_offset + 1"),
        (curve_from_one, "starts at k = 1"),
        (curve_double, "twice"),
        (curve_from_table_wrong_rows, None),
    ],
)
def test_relative_curve_grader_rejects(wrong, hint):
    assert_rejected("relative_dot_product_curve", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    for name in ("sinusoidal_encoding", "sinusoidal_offset_matrix", "relative_dot_product_curve"):
        assert_accepted(name, ns[name])


def table_in_bfloat16(seq_len, dim, base=10000.0):
    """the PyTorch tutorial's code with every tensor in bfloat16"""
    if dim % 2:
        raise ValueError("odd dim")
    position = torch.arange(seq_len, dtype=torch.bfloat16)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.bfloat16) * (-math.log(base) / dim))
    pe = torch.zeros(seq_len, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return pe


def float16_positions(seq_len, dim, base=10000.0):
    """float32 frequencies, positions from arange(..., dtype=float16)"""
    if dim % 2:
        raise ValueError("odd dim")
    position = torch.arange(seq_len, dtype=torch.float16).float()[:, None]
    div = 1.0 / base ** (torch.arange(0, dim, 2).float() / dim)
    pe = torch.zeros(seq_len, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(position * div), torch.cos(position * div)
    return pe


@pytest.mark.parametrize(
    "wrong, hint", [(table_in_bfloat16, "bfloat16"), (float16_positions, "float16")]
)
def test_precision_traps_fail_with_a_precision_hint(wrong, hint):
    assert_rejected("sinusoidal_encoding", wrong, hint)
    assert_rejected("drill_sinusoidal_encoding", wrong, hint)
