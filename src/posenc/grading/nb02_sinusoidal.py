"""Graders for notebook 02 · Sinusoidal position encoding."""

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
)

NOTEBOOK = "02_sinusoidal"
OFF_LIMITS = (
    "posenc.sinusoidal.sinusoidal_frequencies",
    "posenc.sinusoidal.sinusoidal_encoding",
    "posenc.sinusoidal.sinusoidal_offset_matrix",
    "posenc.sinusoidal.relative_dot_product_curve",
    "posenc.sinusoidal.SinusoidalPositionalEncoding",
)
PRECISION_HINT = (
    "positions or angles computed in float16/bfloat16: at positions in the thousands the "
    "angles lose whole radians — compute in float32 or float64"
)


def omega64(dim: int, base: float) -> torch.Tensor:
    """ω_i = base^(−2i/d) in float64.  (dim/2,)"""
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def concat_permutation(dim: int) -> torch.Tensor:
    """Column order that turns the interleaved table into [sin … | cos …]."""
    return torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])


def offset_matrix64(offset: int, dim: int, base: float) -> torch.Tensor:
    """Block-diagonal [[cos kω, sin kω], [−sin kω, cos kω]] in float64: M_k PE[p] = PE[p+k]."""
    angle = offset * omega64(dim, base)
    m = torch.zeros(dim, dim, dtype=torch.float64)
    e = torch.arange(0, dim, 2)
    m[e, e], m[e, e + 1] = torch.cos(angle), torch.sin(angle)
    m[e + 1, e], m[e + 1, e + 1] = -torch.sin(angle), torch.cos(angle)
    return m


def curve64(dim: int, max_offset: int, base: float) -> torch.Tensor:
    """PE[p]·PE[p+k] = Σ_i cos(k ω_i) for k = 0 … max_offset, in float64."""
    k = torch.arange(max_offset + 1, dtype=torch.float64)[:, None]
    return torch.cos(k * omega64(dim, base)).sum(-1)


def _table(seq_len, dim, base, *, angle=None, positions=None, dtype=torch.float64):
    """The sinusoidal table with one knob turned: the models of classic mistakes.

    ``angle(p, i, d)`` gives the angle of pair i at position p; the right one is
    p / base^(2i/d).
    """
    i = torch.arange(dim // 2, dtype=dtype)[None, :]  # (1, dim/2)
    p = (torch.arange(seq_len) if positions is None else positions).to(dtype)[:, None]
    theta = p / base ** (2 * i / dim) if angle is None else angle(p, i, dim)  # (seq, dim/2)
    pe = torch.empty(seq_len, dim, dtype=dtype)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(theta), torch.cos(theta)
    return pe.double()


def _encoding_mistakes(seq_len, dim, base) -> Mistakes:
    ref = _table(seq_len, dim, base)
    concat = concat_permutation(dim)
    return Mistakes(
        {
            "the base argument was ignored (10000 used); use the base passed in": lambda: (
                _table(seq_len, dim, 10000.0) if base != 10000.0 else None
            ),
            "looks like sin and cos are swapped: even columns 2i hold sin, odd 2i+1 hold cos": (
                lambda: ref.view(seq_len, dim // 2, 2).flip(-1).reshape(seq_len, dim)
            ),
            "exponent i/d instead of 2i/d: the pair index i must be doubled (or step "
            "arange(0, dim, 2))": lambda: _table(
                seq_len, dim, base, angle=lambda p, i, d: p / base ** (i / d)
            ),
            "exponent 4i/d: arange(0, dim, 2) already holds 2i — do not double it again": lambda: (
                _table(seq_len, dim, base, angle=lambda p, i, d: p / base ** (4 * i / d))
            ),
            "base applied as a multiplication: the angle is p / base^(2i/d), not "
            "p · base^(2i/d)": lambda: _table(
                seq_len, dim, base, angle=lambda p, i, d: p * base ** (2 * i / d)
            ),
            "base applied as a multiplication: the angle is p / base^(2i/d), not "
            "p / (base · 2i/d)": lambda: _table(
                seq_len, dim, base, angle=lambda p, i, d: p / (base * 2 * i / d)
            ),
            "positions start at 1: the first row is position 0": lambda: _table(
                seq_len, dim, base, positions=torch.arange(1, seq_len + 1)
            ),
            "concatenated [sin … | cos …] layout; this exercise asks for the paper's interleaved "
            "layout (sin, cos, sin, cos, …)": lambda: ref[:, concat],
            "computed in float16: at positions in the thousands the angles lose whole radians; "
            "compute in float32 or float64": lambda: _table(
                seq_len, dim, base, dtype=torch.float16
            ),
            "computed in bfloat16: at positions in the hundreds the angles lose whole radians; "
            "compute in float32 or float64": lambda: _table(
                seq_len, dim, base, dtype=torch.bfloat16
            ),
        }
    )


def _encoding_case(label, seq_len, dim, base=None) -> Case:
    def run(fn):
        if base is None:
            out = call(fn, seq_len, dim)
        else:
            out = call(fn, seq_len, dim, base)
        truth = _table(seq_len, dim, base or 10000.0)
        allowed = allowed_error(seq_len)  # rotation rule: 1 + the largest angle, seq_len − 1
        mistakes = _encoding_mistakes(seq_len, dim, base or 10000.0)
        cause = PRECISION_HINT if seq_len >= 1000 else None
        expect_close(out, truth, label, allowed, mistakes, cause=cause)

    return Case(label, run)


def _odd_dim_case() -> Case:
    label = "odd dim raises ValueError"

    def run(fn):
        try:
            fn(4, 5)
        except ValueError:
            return
        except Exception as err:
            raise Mismatch(f"{label}: got {type(err).__name__}", specific=True) from None
        raise Mismatch(
            f"{label}: dim=5 returned a table; sin/cos come in pairs, so raise ValueError",
            specific=True,
        )

    return Case(label, run)


def _relative_property_case() -> Case:
    label = "PE[p]·PE[p+k] depends only on k"

    def run(fn):
        pe = call(fn, 300, 32)
        if not isinstance(pe, torch.Tensor) or pe.shape != (300, 32):
            raise Mismatch(f"{label}: expected a (300, 32) tensor")
        pe = pe.double()
        for k in (1, 7, 50):
            dots = (pe[: 300 - k] * pe[k:]).sum(-1)  # PE[p]·PE[p+k] for every p
            if dots.max() - dots.min() > 1e-3:
                raise Mismatch(
                    f"{label}: for k={k} it varies with p; is each pair (sin, cos) "
                    "of the same angle?"
                )

    return Case(label, run)


@exercise("sinusoidal_encoding", NOTEBOOK, OFF_LIMITS)
def sinusoidal_encoding_cases() -> list[Case]:
    return [
        _encoding_case("seq 1, dim 2", 1, 2),
        _encoding_case("seq 10, dim 4", 10, 4),
        _encoding_case("seq 50, dim 16", 50, 16),
        _encoding_case("seq 64, dim 8, base 100", 64, 8, 100.0),
        _encoding_case("seq 128, dim 64", 128, 64),
        _encoding_case("seq 2048, dim 32 (large positions)", 2048, 32),
        _encoding_case("seq 4096, dim 16 (large positions, precision)", 4096, 16),
        _relative_property_case(),
        _odd_dim_case(),
    ]


# --- sinusoidal_offset_matrix -------------------------------------------------------------


def _swapped_blocks(offset: int, dim: int, base: float) -> torch.Tensor:
    """Blocks [[sin, cos], [−cos, sin]] instead of [[cos, sin], [−sin, cos]]."""
    angle = offset * omega64(dim, base)
    m = torch.zeros(dim, dim, dtype=torch.float64)
    e = torch.arange(0, dim, 2)
    m[e, e], m[e, e + 1] = torch.sin(angle), torch.cos(angle)
    m[e + 1, e], m[e + 1, e + 1] = -torch.cos(angle), torch.sin(angle)
    return m


def _offset_mistakes(offset, dim, base) -> Mistakes:
    ref = offset_matrix64(offset, dim, base)
    concat = concat_permutation(dim)
    return Mistakes(
        {
            "the sine terms have the wrong sign (that is the transpose, which shifts by −k): "
            "sin((p+k)ω) = sin(pω)cos(kω) + cos(pω)sin(kω)": lambda: ref.T,
            "blocks laid out for the concatenated [sin | cos] layout; the table is "
            "interleaved, so each 2×2 block sits on the diagonal": lambda: ref[concat][:, concat],
            "cos and sin swapped inside each 2×2 block": lambda: _swapped_blocks(offset, dim, base),
            "offset matrix for k+1: the angle is k·ω_i": lambda: offset_matrix64(
                offset + 1, dim, base
            ),
            "every pair was rotated at the frequency of pair 0; pair i turns by k·ω_i with "
            "ω_i = base^(−2i/d)": lambda: torch.block_diag(
                *[offset_matrix64(offset, 2, base)] * (dim // 2)
            ),
        }
    )


def _offset_case(label, offset, dim, base=None) -> Case:
    def run(fn):
        out = call(fn, offset, dim) if base is None else call(fn, offset, dim, base)
        truth = offset_matrix64(offset, dim, base or 10000.0)
        allowed = allowed_error(1 + abs(offset))  # rotation rule: angles up to |k|·ω_0 = |k|
        mistakes = _offset_mistakes(offset, dim, base or 10000.0)
        expect_close(out, truth, label, allowed, mistakes, dtype=None)

    return Case(label, run)


def _shift_property_case() -> Case:
    label = "M_k @ PE[p] = PE[p + k] for every p"

    def run(fn):
        pe = _table(200, 16, 10000.0).float()
        m = call(fn, 9, 16)
        if not isinstance(m, torch.Tensor) or m.shape != (16, 16):
            raise Mismatch(f"{label}: expected a (16, 16) tensor")
        shifted = pe[:191] @ m.float().T  # row p becomes (M @ PE[p])ᵀ
        if not torch.allclose(shifted, pe[9:], atol=1e-4):
            raise Mismatch(f"{label}: it does not hold")

    return Case(label, run)


@exercise("sinusoidal_offset_matrix", NOTEBOOK, OFF_LIMITS)
def sinusoidal_offset_matrix_cases() -> list[Case]:
    return [
        _offset_case("offset 0 (identity), dim 4", 0, 4),
        _offset_case("offset 1, dim 4", 1, 4),
        _offset_case("offset 5, dim 8", 5, 8),
        _offset_case("offset 37, dim 16", 37, 16),
        _offset_case("offset −3, dim 8", -3, 8),
        _offset_case("offset 100, dim 64, base 500", 100, 64, 500.0),
        _shift_property_case(),
    ]


# --- relative_dot_product_curve -----------------------------------------------------------


def _curve_mistakes(dim, max_offset, base) -> Mistakes:
    k = torch.arange(max_offset + 1, dtype=torch.float64)[:, None]
    omega = omega64(dim, base)
    ref = curve64(dim, max_offset, base)
    return Mistakes(
        {
            "summed sin(kω_i); the dot product of two (sin, cos) pairs is cos of the angle "
            "difference": lambda: torch.sin(k * omega).sum(-1),
            "normalised by dim/2; return the raw dot product (it equals d/2 at k = 0)": lambda: (
                ref / (dim / 2)
            ),
            "normalised by dim; return the raw dot product (it equals d/2 at k = 0)": lambda: (
                ref / dim
            ),
            "counted each pair twice: the dot product at k = 0 is d/2, not d": lambda: 2 * ref,
            "curve starts at k = 1; it runs k = 0 … max_offset": lambda: curve64(
                dim, max_offset + 1, base
            )[1:],
        }
    )


def _curve_case(label, dim, max_offset, base=None) -> Case:
    def run(fn):
        out = call(fn, dim, max_offset) if base is None else call(fn, dim, max_offset, base)
        base_ = base or 10000.0
        truth = curve64(dim, max_offset, base_)
        # d/2 cosines of angles up to k·ω_i, then a sum of d/2 terms of size ≤ 1
        magnitude = (1 + max_offset * omega64(dim, base_)).sum().item() + (dim // 2) ** 2
        if isinstance(out, torch.Tensor) and out.shape == (max_offset,):
            raise Mismatch(
                f"{label}: {max_offset} values; the curve has max_offset + 1 (k = 0 … "
                "max_offset inclusive)",
                specific=True,
            )
        mistakes = _curve_mistakes(dim, max_offset, base_)
        expect_close(out, truth, label, allowed_error(magnitude), mistakes, dtype=None)

    return Case(label, run)


@exercise("relative_dot_product_curve", NOTEBOOK, OFF_LIMITS)
def relative_dot_product_curve_cases() -> list[Case]:
    return [
        _curve_case("dim 2, offsets 0 … 5", 2, 5),
        _curve_case("dim 16, offsets 0 … 40", 16, 40),
        _curve_case("dim 64, offsets 0 … 300", 64, 300),
        _curve_case("dim 8, offsets 0 … 30, base 100", 8, 30, 100.0),
        _curve_case("dim 128, offsets 0 … 1000", 128, 1000),
    ]
