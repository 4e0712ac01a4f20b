"""Sinusoidal encoding: the formula, its precision, and the offset (rotation) property."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from posenc.sinusoidal import (
    SinusoidalPositionalEncoding,
    interleaved_to_concatenated_permutation,
    relative_dot_product_curve,
    sinusoidal_encoding,
    sinusoidal_offset_matrix,
)


def test_matches_the_paper_formula_element_by_element():
    pe = sinusoidal_encoding(20, 6, base=50.0)
    for p in range(20):
        for i in range(3):
            angle = p / 50.0 ** (2 * i / 6)
            assert math.isclose(pe[p, 2 * i].item(), math.sin(angle), abs_tol=1e-7)
            assert math.isclose(pe[p, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-7)


def test_first_rows_and_dtype():
    pe = sinusoidal_encoding(3, 4)
    assert pe.dtype == torch.float32 and pe.shape == (3, 4)
    assert pe[0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert sinusoidal_encoding(0, 4).shape == (0, 4)
    assert sinusoidal_encoding(2, 4, dtype=torch.float64).dtype == torch.float64


def test_correctly_rounded_at_position_100k():
    """Angles are computed in float64; a float32 angle there would be ~1e-3 rad off."""
    pe = sinusoidal_encoding(100_001, 64)
    for i in range(32):
        angle = 100_000 / 10000.0 ** (2 * i / 64)
        assert abs(pe[100_000, 2 * i].item() - math.sin(angle)) < 1e-7
        assert abs(pe[100_000, 2 * i + 1].item() - math.cos(angle)) < 1e-7


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"seq_len": 4, "dim": 5}, "dim"),
        ({"seq_len": 4, "dim": 0}, "dim"),
        ({"seq_len": -1, "dim": 4}, "seq_len"),
        ({"seq_len": 4, "dim": 4, "base": 1.0}, "base"),
        ({"seq_len": 4, "dim": 4, "base": 0.5}, "base"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, word):
    with pytest.raises(ValueError, match=word):
        sinusoidal_encoding(**kwargs)


@settings(max_examples=40, deadline=None)
@given(
    half_dim=st.integers(1, 32),
    offset=st.integers(-50, 50),
    p=st.integers(50, 500),
    base=st.floats(2.0, 1e5),
)
def test_offset_matrix_shifts_every_position(half_dim, offset, p, base):
    dim = 2 * half_dim
    pe = sinusoidal_encoding(p + 51, dim, base, dtype=torch.float64)
    m = sinusoidal_offset_matrix(offset, dim, base).double()
    torch.testing.assert_close(m @ pe[p], pe[p + offset], atol=1e-6, rtol=0)


def test_offset_matrices_compose_and_are_rotations():
    m3, m4, m7 = (sinusoidal_offset_matrix(k, 16) for k in (3, 4, 7))
    torch.testing.assert_close(m3 @ m4, m7, atol=1e-6, rtol=0)
    torch.testing.assert_close(m3 @ m3.T, torch.eye(16), atol=1e-6, rtol=0)
    torch.testing.assert_close(sinusoidal_offset_matrix(-3, 16), m3.T, atol=1e-6, rtol=0)
    torch.testing.assert_close(sinusoidal_offset_matrix(0, 16), torch.eye(16))


def test_offset_matrix_is_block_diagonal():
    m = sinusoidal_offset_matrix(5, 8)
    mask = torch.block_diag(*[torch.ones(2, 2)] * 4).bool()
    assert (m[~mask] == 0).all()


@settings(max_examples=20, deadline=None)
@given(half_dim=st.integers(1, 32), p=st.integers(0, 300))
def test_dot_product_depends_only_on_offset(half_dim, p):
    dim = 2 * half_dim
    pe = sinusoidal_encoding(p + 41, dim, dtype=torch.float64)
    curve = relative_dot_product_curve(dim, 40).double()
    dots = pe[p : p + 41] @ pe[p]  # PE[p]·PE[p+k]
    torch.testing.assert_close(dots, curve, atol=1e-5, rtol=0)
    assert math.isclose(curve[0].item(), dim / 2, rel_tol=1e-6)


def test_concatenated_layout_is_a_column_permutation():
    pe = sinusoidal_encoding(10, 8)
    cat = pe[:, interleaved_to_concatenated_permutation(8)]
    angles = torch.arange(10.0)[:, None] / 10000.0 ** (torch.arange(0, 8, 2) / 8)
    torch.testing.assert_close(cat, torch.cat([angles.sin(), angles.cos()], -1), atol=1e-6, rtol=0)


def test_scheme_adds_the_table():
    scheme = SinusoidalPositionalEncoding(8)
    x = torch.randn(2, 5, 8)
    out = scheme.embed(x, torch.arange(5))
    torch.testing.assert_close(out, x + sinusoidal_encoding(5, 8))
    assert list(scheme.parameters()) == []


def test_scheme_caches_its_table_as_a_buffer_and_grows_it():
    scheme = SinusoidalPositionalEncoding(8)
    x = torch.zeros(1, 4, 8)
    scheme.embed(x, torch.arange(4))
    table = scheme.table
    assert len(table) >= 4 and "table" not in scheme.state_dict()  # not persistent
    scheme.embed(x, torch.tensor([3, 2, 1, 0]))
    assert scheme.table is table  # reused, not rebuilt
    out = scheme.embed(torch.zeros(1, 3, 8), torch.tensor([0, 50, 99]))  # past the cache
    assert len(scheme.table) >= 100
    torch.testing.assert_close(out[0], sinusoidal_encoding(100, 8)[[0, 50, 99]])


def test_scheme_keeps_float64_and_takes_batched_positions():
    scheme = SinusoidalPositionalEncoding(8)
    out = scheme.embed(
        torch.zeros(2, 3, 8, dtype=torch.float64), torch.tensor([[0, 1, 2], [5, 6, 7]])
    )
    assert out.dtype == torch.float64
    exact = sinusoidal_encoding(8, 8, dtype=torch.float64)
    assert torch.equal(out[1], exact[5:8]) and torch.equal(out[0], exact[:3])


BAD_SINUSOIDAL_CALLS = [
    (lambda: sinusoidal_encoding(2.5, 4), TypeError, "seq_len"),
    (lambda: sinusoidal_encoding(True, 4), TypeError, "seq_len"),
    (lambda: sinusoidal_encoding(4, 4.0), TypeError, "dim"),
    (lambda: sinusoidal_encoding(4, 4, base="1e4"), TypeError, "base"),
    (lambda: sinusoidal_encoding(4, 4, base=float("inf")), ValueError, "base"),
    (lambda: sinusoidal_encoding(4, 4, dtype=torch.int64), TypeError, "dtype"),
    (lambda: sinusoidal_offset_matrix(1.5, 4), TypeError, "offset"),
    (lambda: relative_dot_product_curve(4, -1), ValueError, "max_offset"),
    (lambda: relative_dot_product_curve(4, 3.0), TypeError, "max_offset"),
    (lambda: interleaved_to_concatenated_permutation(3), ValueError, "dim"),
    (lambda: SinusoidalPositionalEncoding(7), ValueError, "dim"),
    (
        lambda: SinusoidalPositionalEncoding(8).embed(torch.zeros(3, 8).long(), torch.arange(3)),
        TypeError,
        "x",
    ),
    (
        lambda: SinusoidalPositionalEncoding(8).embed(torch.zeros(3, 6), torch.arange(3)),
        ValueError,
        "x",
    ),
    (
        lambda: SinusoidalPositionalEncoding(8).embed(torch.zeros(3, 8), torch.arange(4)),
        ValueError,
        "positions",
    ),
    (
        lambda: SinusoidalPositionalEncoding(8).embed(torch.zeros(3, 8), torch.arange(3.0)),
        TypeError,
        "positions",
    ),
    (
        lambda: SinusoidalPositionalEncoding(8).embed(torch.zeros(3, 8), torch.tensor([0, -1, 2])),
        ValueError,
        "positions",
    ),
]


@pytest.mark.parametrize("call, error, word", BAD_SINUSOIDAL_CALLS)
def test_bad_arguments_raise_naming_the_argument_and_type(call, error, word):
    with pytest.raises(error, match=word):
        call()
