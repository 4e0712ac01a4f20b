"""RoPE, rotary position embedding (Su et al., 2021).

Rotate each pair of query/key features by an angle proportional to the token's position:

    pair i at position m is turned by  m·θ_i,   θ_i = base^(−2i/d),   i = 0 … d/2 − 1.

A rotation by mθ followed by a dot product with a rotation by nθ depends only on (m − n)θ,
so q_m · k_n becomes a function of the content and of m − n alone.

Two layouts decide *which* features form pair i; they are the same up to a permutation:

* ``"half"``: pair i = (x[i], x[i + d/2]); GPT-NeoX and Hugging Face Llama (``rotate_half``);
* ``"interleaved"``: pair i = (x[2i], x[2i + 1]); the RoFormer paper, Meta's Llama reference
  (complex numbers) and GPT-J.

The frequencies θ are ``base^(−2i/d)`` unless a caller passes others (``frequencies``: a
tensor, or a function of the sequence length for dynamic scaling); ``posenc.rope_scaling``
builds them from Hugging Face configs.

Precision. Angles are never computed in the dtype of x when that is bf16 or fp16 (there the
positions 0 … 4095 would collapse onto a few hundred distinct angles). For float32 and lower x
they are computed in float32, as Hugging Face does: θ_i and the product m·θ_i are each rounded,
so an angle is off by up to about |m·θ_i|·2⁻²³ rad (6e-5 rad at m·θ_i = 500, 0.06 rad at
m·θ_i = 5·10⁵). For float64 x, and for any |position| ≥ 2²⁴ (where float32 stops holding every
integer), θ and the angles are computed in float64 (θ from ``base`` in float64 too): the error
is then at most |m·θ_i|·2⁻⁵², under 5e-7 rad up to m = 2³¹. Positions must lie within ±2⁵³.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real
from typing import Literal, get_args

import torch
from torch import Tensor

from posenc.attention import PositionScheme
from posenc.sinusoidal import interleaved_to_concatenated_permutation, sinusoidal_frequencies

Layout = Literal["half", "interleaved"]
LAYOUTS: tuple[str, ...] = get_args(Layout)
Frequencies = Tensor | Callable[[int], Tensor]  # θ (d/2,), or seq_len -> θ (dynamic scaling)

FLOAT32_EXACT_POSITIONS = 2**24  # from here on float32 cannot hold every integer position
MAX_POSITION = 2**53  # float64 holds every integer up to here


# --- argument checks (shared with posenc.rope_scaling) ------------------------------------


def check_int(name: str, value, *, minimum: int = 0) -> int:
    """``value`` as an int ≥ minimum; an integral float (4096.0) is accepted, 2.5 or True not."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if not isinstance(value, Integral) and not (math.isfinite(value) and value == int(value)):
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_real(name: str, value, *, above: float | None = None, at_least: float | None = None):
    """``value`` as a finite float, > above or ≥ at_least when given."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be > {above:g}, got {value!r}")
    if at_least is not None and not value >= at_least:
        raise ValueError(f"{name} must be >= {at_least:g}, got {value!r}")
    return value


def check_dim(dim, name: str = "dim") -> int:
    """A positive even int: features rotate in pairs."""
    dim = check_int(name, dim, minimum=1)
    if dim % 2:
        raise ValueError(
            f"{name} must be a positive even int (features rotate in pairs), got {dim}"
        )
    return dim


def check_layout(layout) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _check_positions(positions) -> Tensor:
    if not isinstance(positions, Tensor):
        raise TypeError(f"positions must be an integer tensor, got {type(positions).__name__}")
    if positions.is_floating_point() or positions.is_complex() or positions.dtype == torch.bool:
        raise ValueError(f"positions must be an integer tensor, got dtype {positions.dtype}")
    if positions.numel() and positions.abs().max() > MAX_POSITION:
        raise ValueError(f"positions must lie within ±2**53 (exact in float64), got {positions}")
    return positions


def _check_x(x) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a tensor (..., seq, dim), got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(
            f"x must be a floating-point tensor, got dtype {x.dtype}: rotating integers would "
            "truncate the result; convert with x.float()"
        )
    if x.ndim < 2:
        raise ValueError(f"x must be (..., seq, dim), got shape {tuple(x.shape)}")


# --- frequencies and tables ----------------------------------------------------------------


def rope_frequencies(
    dim: int, base: float = 10000.0, *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """θ_i = base^(−2i/dim) for i = 0 … dim/2 − 1, computed in float64 and returned in ``dtype``.

    The same ladder as the sinusoidal encoding's ω_i (``posenc.sinusoidal``).  Returns (dim // 2,).
    """
    check_dim(dim)
    check_real("base", base, above=1.0)
    return sinusoidal_frequencies(dim, float(base)).to(dtype)


def _resolve_frequencies(
    frequencies: Frequencies | None, dim: int, base: float, positions: Tensor, work: torch.dtype
) -> Tensor:
    """θ (dim/2,) in ``work`` on positions' device: from base, a tensor, or θ(seq_len)."""
    if frequencies is None:
        return rope_frequencies(dim, base, dtype=work).to(positions.device)
    if callable(frequencies) and not isinstance(frequencies, Tensor):
        seq_len = int(positions.max()) + 1 if positions.numel() else 0
        frequencies = frequencies(seq_len)
    check_frequencies(frequencies, dim)
    return frequencies.to(device=positions.device, dtype=work)


def check_frequencies(theta, dim: int) -> None:
    """θ must be a finite, non-negative floating tensor with one entry per pair."""
    if not isinstance(theta, Tensor) or not theta.is_floating_point():
        raise TypeError(f"frequencies must be a floating tensor (dim/2,), got {theta!r:.80}")
    if theta.shape != (dim // 2,):
        raise ValueError(
            f"frequencies must have shape ({dim // 2},) (one per pair of the rotary dim {dim}), "
            f"got {tuple(theta.shape)}"
        )
    if not (torch.isfinite(theta).all() and (theta >= 0).all()):
        raise ValueError("frequencies must be finite and >= 0")


def rope_cos_sin(
    positions: Tensor,
    dim: int,
    base: float = 10000.0,
    *,
    frequencies: Frequencies | None = None,
    attention_factor: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """cos(m·θ_i) and sin(m·θ_i), each of shape (*positions.shape, dim // 2), in ``dtype``.

    The angles are computed in float32, or float64 for ``dtype`` float64 or |positions| ≥ 2²⁴
    (see the module docstring for the error bound); only the results are cast to ``dtype``.
    ``frequencies`` replaces base^(−2i/d): a (dim/2,) tensor, or a function of the sequence
    length max(positions) + 1 (dynamic scaling). ``attention_factor`` multiplies cos and sin
    (YaRN's temperature; q·k then scales by its square).
    """
    positions = _check_positions(positions)
    dim = check_dim(dim)
    attention_factor = check_real("attention_factor", attention_factor, above=0.0)
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    big = positions.numel() and positions.abs().max() >= FLOAT32_EXACT_POSITIONS
    work = torch.float64 if dtype == torch.float64 or big else torch.float32
    theta = _resolve_frequencies(frequencies, dim, base, positions, work)  # (d/2,)
    angles = positions.to(work)[..., None] * theta  # (..., d/2): m·θ_i
    cos, sin = torch.cos(angles), torch.sin(angles)
    if attention_factor != 1.0:
        cos, sin = cos * attention_factor, sin * attention_factor
    return cos.to(dtype), sin.to(dtype)


# --- the rotations -------------------------------------------------------------------------


def _check_pairs(x) -> None:
    """x: a floating tensor whose last axis holds whole pairs."""
    if not isinstance(x, Tensor) or not x.is_floating_point():
        raise TypeError(
            f"x must be a floating-point tensor, got {getattr(x, 'dtype', type(x).__name__)}"
        )
    if x.ndim == 0 or x.shape[-1] % 2:
        raise ValueError(f"x's last axis must be even (pairs), got shape {tuple(x.shape)}")


def rotate_half(x: Tensor) -> Tensor:
    """[x1, x2] -> [−x2, x1] with x1, x2 the two halves of the last axis (GPT-NeoX / HF)."""
    _check_pairs(x)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def rotate_interleaved(x: Tensor) -> Tensor:
    """(x0, x1, x2, x3, …) -> (−x1, x0, −x3, x2, …): the same for adjacent pairs."""
    _check_pairs(x)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([-x_odd, x_even], dim=-1).flatten(-2)


def _compute_dtype(x: Tensor) -> torch.dtype:
    """float32 for bf16/fp16/float32 x, float64 for float64 x."""
    return torch.promote_types(x.dtype, torch.float32)


def _check_out(out: Tensor, x: Tensor) -> None:
    if not isinstance(out, Tensor) or out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(
            f"out must be a tensor of x's shape {tuple(x.shape)} and dtype {x.dtype}, got "
            f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}"
            f"{'' if not isinstance(out, Tensor) else ' ' + str(out.dtype)}"
        )
    if out.device != x.device:
        raise ValueError(f"out is on {out.device} but x on {x.device}")


def rope_cached(x: Tensor, cos: Tensor, sin: Tensor, *, out: Tensor | None = None) -> Tensor:
    """The fast path of the half layout, with cos and sin computed once ahead (per position
    and pair, shape (seq, d/2), float32): for pair i = (x[i], x[i + d/2]),

        out[i]       = x[i] · cos − x[i + d/2] · sin
        out[i + d/2] = x[i + d/2] · cos + x[i] · sin

    written straight into the two halves of one output tensor (no temporary copies of x).
    Computed in float32 (float64 for float64 x), returned in x's dtype.  x: (..., seq, d).
    ``out`` (x's shape and dtype; ``out=x`` rotates in place) receives the result.
    """
    _check_pairs(x)
    half = x.shape[-1] // 2
    if cos.shape[-1] != half or sin.shape != cos.shape:
        raise ValueError(
            f"cos and sin must end in d/2 = {x.shape[-1] / 2:g} entries for x of shape "
            f"{tuple(x.shape)} (d even), got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    if out is not None:
        _check_out(out, x)
    work = _compute_dtype(x)
    xf, cos, sin = x.to(work), cos.to(work), sin.to(work)
    x1, x2 = xf[..., :half], xf[..., half:]  # (..., seq, d/2) views
    if torch.is_grad_enabled() and (xf.requires_grad or cos.requires_grad or sin.requires_grad):
        # out= writes are not differentiable: the same formula, with autograd
        result = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
        return result if out is None else out.copy_(result)
    direct = out is not None and out.dtype == work  # write into out itself, no staging copy
    target = out if direct else torch.empty_like(xf)
    _rotate_half_into(x1, x2, cos, sin, target, aliased=direct and _shares_memory(out, x))
    if out is not None and not direct:
        return out.copy_(target)
    return target if direct else target.to(x.dtype)


def _shares_memory(a: Tensor, b: Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _rotate_half_into(x1, x2, cos, sin, target: Tensor, *, aliased: bool) -> None:
    """target = rotated [x1 | x2]; when target is x itself, keep a copy of x1 first."""
    half = x1.shape[-1]
    out1, out2 = target[..., :half], target[..., half:]
    x1_kept = x1.clone() if aliased else x1  # out1 overwrites x1 before out2 reads it
    torch.mul(x1, cos, out=out1)
    out1.addcmul_(x2, sin, value=-1.0)  # x1·cos − x2·sin
    torch.mul(x2, cos, out=out2)
    out2.addcmul_(x1_kept, sin)  # x2·cos + x1·sin


def rope_cached_(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """In-place :func:`rope_cached`: rotates x (half layout) and returns it."""
    return rope_cached(x, cos, sin, out=x)


def rope_cached_interleaved(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The interleaved layout with cos and sin computed ahead ((..., seq, d/2), broadcasting
    against x's leading axes): pairs as complex numbers x[2i] + i·x[2i+1] times
    cos + i·sin = e^{i·mθ}, one fused multiply (Meta's Llama reference). Computed in float32
    (float64 for float64 x), returned in x's dtype."""
    _check_pairs(x)
    if cos.shape[-1] != x.shape[-1] // 2 or sin.shape != cos.shape:
        raise ValueError(
            f"cos and sin must end in d/2 = {x.shape[-1] / 2:g} entries for x of shape "
            f"{tuple(x.shape)} (d even), got {tuple(cos.shape)} and {tuple(sin.shape)}"
        )
    work = _compute_dtype(x)
    z = torch.view_as_complex(x.to(work).reshape(*x.shape[:-1], -1, 2).contiguous())
    rotation = torch.complex(cos.to(work), sin.to(work))  # (..., seq, d/2)
    return torch.view_as_real(z * rotation).flatten(-2).to(x.dtype)


def _positions_for(x: Tensor, positions: Tensor) -> Tensor:
    """positions shaped to broadcast against x's (..., seq): (batch, seq) for x of shape
    (batch, heads, seq, d) gets a head axis, (batch, 1, seq)."""
    if positions.ndim == 0 or positions.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"positions must end in seq = {x.shape[-2]} entries (x: {tuple(x.shape)}), "
            f"got shape {tuple(positions.shape)}"
        )
    if positions.ndim == 2 and x.ndim == 4:
        positions = positions[:, None, :]  # (batch, 1, seq): the same for every head
    try:
        torch.broadcast_shapes(positions.shape[:-1], x.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"positions of shape {tuple(positions.shape)} do not broadcast against x of shape "
            f"{tuple(x.shape)}: use (seq,), (batch, seq) or x's leading axes"
        ) from None
    return positions


def apply_rope(
    x: Tensor,
    positions: Tensor,
    *,
    base: float = 10000.0,
    layout: Layout = "half",
    rotary_dim: int | None = None,
    frequencies: Frequencies | None = None,
    attention_factor: float = 1.0,
    out: Tensor | None = None,
) -> Tensor:
    """Rotate queries or keys ``x`` of shape (..., seq, dim) by their positions.

    ``positions``: integer, (seq,), or (batch, seq) broadcasting against x's leading axes as
    (batch, 1, seq) for x of shape (batch, heads, seq, dim). ``rotary_dim`` < dim rotates only
    the first rotary_dim features (partial rotary, as GPT-NeoX and Phi); the rest pass through.
    ``frequencies`` and ``attention_factor`` as in :func:`rope_cos_sin`; ``out`` (x's shape and
    dtype, may be x itself) receives the result.

        x_rot = x · cos(mθ) + rotate(x) · sin(mθ)
    """
    _check_x(x)
    check_layout(layout)
    rotary_dim = check_dim(x.shape[-1] if rotary_dim is None else rotary_dim, "rotary_dim")
    if rotary_dim > x.shape[-1]:
        raise ValueError(f"rotary_dim must be in (0, {x.shape[-1]}] (x's dim), got {rotary_dim}")
    positions = _positions_for(x, _check_positions(positions)).to(x.device)
    if out is not None:
        _check_out(out, x)
    cos, sin = rope_cos_sin(
        positions,
        rotary_dim,
        base,
        frequencies=frequencies,
        attention_factor=attention_factor,
        dtype=_compute_dtype(x),
    )  # (..., seq, r/2)
    x_rot = x[..., :rotary_dim]
    if layout == "half":
        rotated = rope_cached(x_rot, cos, sin, out=None if out is None else out[..., :rotary_dim])
    else:
        rotated = rope_cached_interleaved(x_rot, cos, sin)
    if out is None:
        return (
            torch.cat([rotated, x[..., rotary_dim:]], -1) if rotary_dim < x.shape[-1] else rotated
        )
    if layout != "half":
        out[..., :rotary_dim].copy_(rotated)
    if rotary_dim < x.shape[-1] and out.data_ptr() != x.data_ptr():
        out[..., rotary_dim:].copy_(x[..., rotary_dim:])
    return out


def apply_rope_complex(x: Tensor, positions: Tensor, *, base: float = 10000.0) -> Tensor:
    """The interleaved layout via complex numbers, as in Meta's Llama reference:
    view pairs (x[2i], x[2i+1]) as x[2i] + i·x[2i+1] and multiply by e^{i·mθ}.

    The same computation as ``apply_rope(x, positions, base=base, layout="interleaved")``
    (whose interleaved path is this complex multiply), positions handled the same way."""
    return apply_rope(x, positions, base=base, layout="interleaved")


# --- layouts and checkpoints ---------------------------------------------------------------


def half_to_interleaved_permutation(dim: int) -> Tensor:
    """perm with  x_half = x_interleaved[..., perm]:  [0, 2, 4, …, 1, 3, 5, …].

    Then apply_rope(x[..., perm], layout="half") == apply_rope(x, layout="interleaved")[..., perm].
    The same permutation as the sinusoidal table's interleaved → [sin | cos] one
    (:func:`posenc.sinusoidal.interleaved_to_concatenated_permutation`): evens, then odds.
    """
    return interleaved_to_concatenated_permutation(check_dim(dim))


def qk_weight_permutation(num_heads: int, head_dim: int) -> Tensor:
    """Row permutation that converts a q or k projection (nn.Linear weight, out × in) trained
    with the interleaved layout into one for the half layout: W_half = W_interleaved[perm].

    This is what the Llama checkpoint converter to Hugging Face does; v and o are unchanged.
    """
    num_heads = check_int("num_heads", num_heads, minimum=1)
    per_head = half_to_interleaved_permutation(check_dim(head_dim, "head_dim"))
    return torch.cat([h * head_dim + per_head for h in range(num_heads)])


class RotaryEmbedding(PositionScheme):
    """RoPE as a position scheme: rotates q and k, leaves the embeddings and scores alone.

    ``frequencies`` (a (rotary_dim/2,) tensor, or a function of the sequence length) and
    ``attention_factor`` replace plain θ = base^(−2i/d); ``posenc.rope_scaling`` builds them
    from Hugging Face configs (:func:`posenc.rope_scaling.rotary_embedding`).
    """

    def __init__(
        self,
        head_dim: int,
        base: float = 10000.0,
        *,
        layout: Layout = "half",
        rotary_dim: int | None = None,
        frequencies: Frequencies | None = None,
        attention_factor: float = 1.0,
    ):
        super().__init__()
        self.head_dim = check_dim(head_dim, "head_dim")
        self.rotary_dim = check_dim(head_dim if rotary_dim is None else rotary_dim, "rotary_dim")
        if self.rotary_dim > self.head_dim:
            raise ValueError(f"rotary_dim must be <= head_dim {head_dim}, got {rotary_dim}")
        self.base = check_real("base", base, above=1.0)
        check_layout(layout)
        self.layout = layout
        self.attention_factor = check_real("attention_factor", attention_factor, above=0.0)
        if isinstance(frequencies, Tensor):
            check_frequencies(frequencies, self.rotary_dim)
            self.register_buffer("inv_freq", frequencies.clone(), persistent=False)
        elif frequencies is not None and not callable(frequencies):
            raise TypeError(f"frequencies must be a tensor or a callable, got {frequencies!r}")
        self.dynamic = (
            frequencies if callable(frequencies) and not isinstance(frequencies, Tensor) else None
        )

    def frequencies(self, positions: Tensor) -> Frequencies | None:
        """θ for a forward over ``positions``: fixed, or computed once for their length."""
        if self.dynamic is not None:
            seq_len = int(positions.max()) + 1 if positions.numel() else 0
            theta = self.dynamic(seq_len)
            check_frequencies(theta, self.rotary_dim)
            return theta
        return getattr(self, "inv_freq", None)

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """q: (..., q_len, d) takes the last q_len positions; k: (..., k_len, d) all of them."""
        for name, t in (("q", q), ("k", k)):
            if not isinstance(t, Tensor) or t.ndim < 2 or t.shape[-1] != self.head_dim:
                shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must end in head_dim = {self.head_dim}, got {shape}")
        positions = _check_positions(positions)
        if positions.ndim == 0 or q.shape[-2] > positions.shape[-1]:
            raise ValueError(
                f"positions (shape {tuple(positions.shape)}) must cover the {q.shape[-2]} queries"
            )
        q_pos = positions[..., positions.shape[-1] - q.shape[-2] :]
        kw = dict(
            base=self.base,
            layout=self.layout,
            rotary_dim=self.rotary_dim,
            frequencies=self.frequencies(positions),  # the same θ for q and k
            attention_factor=self.attention_factor,
        )
        return apply_rope(q, q_pos, **kw), apply_rope(k, positions, **kw)


def rope_decay_bound(distances: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """The long-term decay curve of RoFormer (Su et al., section 3.4.3):

        (1 / (d/2)) · Σ_{j=1}^{d/2} |S_j|,   S_j = Σ_{k=0}^{j−1} e^{i·r·θ_k},   r = m − n.

    It bounds how large q_m·k_n can be, relative to the content, as the distance r grows
    (by Abel summation, with the pairwise products of q and k as the other factor).
    ``distances``: a 1-D real tensor. Returns one value per distance, float32.
    """
    if not isinstance(distances, Tensor) or distances.ndim != 1 or distances.is_complex():
        raise ValueError(f"distances must be a 1-D real tensor, got {distances!r:.80}")
    theta = rope_frequencies(dim, base, dtype=torch.float64)  # (d/2,)
    phases = distances.double()[:, None] * theta[None, :]  # (n, d/2)
    partial = torch.cumsum(torch.polar(torch.ones_like(phases), phases), dim=-1)  # S_1 … S_{d/2}
    return partial.abs().mean(-1).float()


# --- which pairs turn less than once within a length --------------------------------------

# Llama 2 (Touvron et al., 2023): head_dim 128, base 10 000, trained at 4096 tokens. 18 of its
# 64 pairs have a wavelength 2π/θ_i longer than 4096, so they never complete a turn in training.
LLAMA2_REGIME = {"head_dim": 128, "base": 10000.0, "train_len": 4096}


def rope_wavelengths(dim: int, base: float = 10000.0) -> Tensor:
    """λ_i = 2π / θ_i = 2π · base^(2i/dim), in positions, float64.  Returns (dim // 2,)."""
    return 2 * math.pi / rope_frequencies(dim, base, dtype=torch.float64)


def slow_pair_count(length: int, dim: int, base: float = 10000.0) -> int:
    """How many of the dim/2 pairs turn less than once within ``length`` positions (λ_i > length).

    These pairs see only part of their circle during training at that length; beyond it they
    reach angles never trained on.  Llama 2 at 4096: 18 of 64 (``LLAMA2_REGIME``)."""
    check_int("length", length, minimum=1)
    return int((rope_wavelengths(dim, base) > length).sum())


def base_for_slow_fraction(length: int, dim: int, fraction: float) -> float:
    """The base at which pair i = (1 − fraction)·dim/2 has a wavelength of exactly ``length``.

    From λ_i = 2π · base^(2i/dim) = length:  base = (length / 2π)^(1 / (1 − fraction)).
    Rounding this base puts about ``fraction`` of the pairs beyond ``length``."""
    check_dim(dim)
    check_int("length", length, minimum=7)  # length / 2π must exceed 1
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    return (length / (2 * math.pi)) ** (1.0 / (1.0 - fraction))


# --- decoding token by token with a KV cache -----------------------------------------------


def rope_decode_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    cache_k: Tensor,
    cache_v: Tensor,
    position: int,
    *,
    base: float = 10000.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """One decoding step of causal RoPE attention with a KV cache (half layout).

    q, k, v: (..., 1, d), the new token's projections; cache_k, cache_v: (..., t, d), the keys
    of positions 0 … t − 1 *already rotated* and their values; ``position`` = t, the new token's.

        k_t ← R_{Θ,t} k_t  (rotated once, at its own position, then stored for good)
        out = softmax(R_{Θ,t} q · [cache_k; k_t]ᵀ / √d) [cache_v; v_t]

    The new query sees every cached key (nothing in the cache is in its future), so no mask is
    needed. Running it for t = 0 … T − 1 from an empty cache equals causal attention over the
    whole sequence. Returns (out (..., 1, d), cache_k (..., t + 1, d), cache_v (..., t + 1, d)).
    """
    position = check_int("position", position, minimum=0)
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, Tensor) or t.ndim < 2 or t.shape[-2] != 1:
            shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be one new token, shape (..., 1, d), got {shape}")
    if cache_k.shape[-2] != position or cache_v.shape[-2] != position:
        raise ValueError(
            f"the cache must hold the {position} positions before position {position}, got "
            f"cache_k {tuple(cache_k.shape)} and cache_v {tuple(cache_v.shape)}"
        )
    at = torch.tensor([position])
    cache_k = torch.cat([cache_k, apply_rope(k, at, base=base)], dim=-2)  # (..., t + 1, d)
    cache_v = torch.cat([cache_v, v], dim=-2)
    scores = apply_rope(q, at, base=base) @ cache_k.transpose(-1, -2)  # (..., 1, t + 1)
    weights = torch.softmax(scores / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ cache_v, cache_k, cache_v


def rope_scores_by_distance(q: Tensor, k: Tensor, distances: Tensor, *, base: float = 10000.0):
    """q_m · k_n for every distance r = m − n in ``distances`` (half layout).

    The score depends on m − n only, so q is rotated by r and k left at position 0:
    q_m · k_n = (R_{Θ,r} q) · k.  q, k: (..., d), broadcasting against each other;
    distances: (R,) integers.  Returns (..., R), in q's dtype promoted to float32.
    """
    distances = _check_positions(distances)
    if distances.ndim != 1:
        raise ValueError(f"distances must be 1-D (R,), got shape {tuple(distances.shape)}")
    q, k = torch.broadcast_tensors(q, k)  # (..., d)
    rotated = apply_rope(
        q[..., None, :].expand(*q.shape[:-1], len(distances), q.shape[-1]), distances, base=base
    )  # (..., R, d)
    return (rotated * k[..., None, :].to(rotated.dtype)).sum(-1)
