"""RoPE, rotary position embedding (Su et al., 2021).

Rotate each pair of query/key features by an angle proportional to the token's position:

    pair i at position m is turned by  m·θ_i,   θ_i = base^(−2i/d),   i = 0 … d/2 − 1.

A rotation by mθ followed by a dot product with a rotation by nθ depends only on (m − n)θ,
so q_m · k_n becomes a function of the content and of m − n alone.

Two layouts decide *which* features form pair i; they are the same up to a permutation:

* ``"half"``: pair i = (x[i], x[i + d/2]); GPT-NeoX and Hugging Face Llama (``rotate_half``);
* ``"interleaved"``: pair i = (x[2i], x[2i + 1]); the RoFormer paper, Meta's Llama reference
  (complex numbers) and GPT-J.

Angles are always computed in float32 or better, whatever the dtype of x: in bf16 the
positions 0 … 4095 would collapse onto a few hundred distinct angles.
"""

from __future__ import annotations

import torch
from torch import Tensor

from posenc.attention import PositionScheme

LAYOUTS = ("half", "interleaved")


def rope_frequencies(dim: int, base: float = 10000.0) -> Tensor:
    """θ_i = base^(−2i/dim) for i = 0 … dim/2 − 1, float32.  Returns (dim // 2,)."""
    if not isinstance(dim, int) or dim <= 0 or dim % 2:
        raise ValueError(f"dim must be a positive even int (features rotate in pairs), got {dim!r}")
    if not base > 1:
        raise ValueError(f"base must be > 1, got {base!r}")
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)
    return (base ** (-two_i / dim)).float()


def rope_cos_sin(
    positions: Tensor,
    dim: int,
    base: float = 10000.0,
    *,
    scaling: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """cos(m·θ_i) and sin(m·θ_i), each of shape (*positions.shape, dim // 2).

    The angles m·θ_i are computed in float32 (float64 for positions ≥ 2²⁴, where float32
    stops holding integers exactly) and only the results are cast to ``dtype``.
    ``scaling`` takes a Hugging Face–style ``rope_scaling`` dict (see posenc.rope_scaling);
    its attention factor multiplies cos and sin.
    """
    if scaling is not None:
        from posenc.rope_scaling import rope_scaled_frequencies

        seq_len = int(positions.max()) + 1 if positions.numel() else 0
        theta, attention_factor = rope_scaled_frequencies(dim, base, scaling, seq_len=seq_len)
    else:
        theta, attention_factor = rope_frequencies(dim, base), 1.0
    work = torch.float64 if positions.numel() and positions.abs().max() >= 2**24 else torch.float32
    angles = positions.to(work)[..., None] * theta.to(
        device=positions.device, dtype=work
    )  # (..., d/2)
    cos, sin = torch.cos(angles) * attention_factor, torch.sin(angles) * attention_factor
    return cos.to(dtype), sin.to(dtype)


def rotate_half(x: Tensor) -> Tensor:
    """[x1, x2] -> [−x2, x1] with x1, x2 the two halves of the last axis (GPT-NeoX / HF)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def rotate_interleaved(x: Tensor) -> Tensor:
    """(x0, x1, x2, x3, …) -> (−x1, x0, −x3, x2, …): the same for adjacent pairs."""
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([-x_odd, x_even], dim=-1).flatten(-2)


def rope_cached(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The fast path of the half layout, with cos and sin computed once ahead (per position
    and pair, shape (seq, d/2), float32): for pair i = (x[i], x[i + d/2]),

        out[i]       = x[i] · cos − x[i + d/2] · sin
        out[i + d/2] = x[i + d/2] · cos + x[i] · sin

    written straight into the two halves of one output tensor (no temporary copies of x).
    Computed in float32, returned in x's dtype.  x: (..., seq, d).
    """
    half = x.shape[-1] // 2
    xf = x.float()
    x1, x2 = xf[..., :half], xf[..., half:]  # (..., seq, d/2) views
    if torch.is_grad_enabled() and (xf.requires_grad or cos.requires_grad or sin.requires_grad):
        # out= writes are not differentiable: the same formula, with autograd
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
    out = torch.empty_like(xf)
    out1, out2 = out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=out1)
    out1.addcmul_(x2, sin, value=-1.0)  # x1·cos − x2·sin
    torch.mul(x2, cos, out=out2)
    out2.addcmul_(x1, sin)  # x2·cos + x1·sin
    return out.to(x.dtype)


def _rope_interleaved_complex(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Interleaved pairs as complex numbers times cos + i·sin: one fused multiply."""
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(z * torch.complex(cos, sin)).flatten(-2).to(x.dtype)


def _check_shapes(x: Tensor, positions: Tensor, rotary_dim: int) -> None:
    if rotary_dim <= 0 or rotary_dim % 2 or rotary_dim > x.shape[-1]:
        raise ValueError(
            f"rotary_dim must be even and in (0, {x.shape[-1]}] (the head dim), got {rotary_dim}"
        )
    if x.ndim < 2:
        raise ValueError(f"x must be (..., seq, dim), got shape {tuple(x.shape)}")
    if positions.is_floating_point():
        raise ValueError("positions must be an integer tensor")
    if positions.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"positions has {positions.shape[-1]} entries on its last axis but x has "
            f"seq = {x.shape[-2]} (x: {tuple(x.shape)}, positions: {tuple(positions.shape)})"
        )


def apply_rope(
    x: Tensor,
    positions: Tensor,
    *,
    base: float = 10000.0,
    layout: str = "half",
    rotary_dim: int | None = None,
    scaling: dict | None = None,
) -> Tensor:
    """Rotate queries or keys ``x`` of shape (..., seq, dim) by their positions.

    ``positions``: (seq,), or (batch, seq) broadcasting against x's leading axes as
    (batch, 1, seq) for x of shape (batch, heads, seq, dim). ``rotary_dim`` < dim rotates only
    the first rotary_dim features (partial rotary, as GPT-NeoX and Phi); the rest pass through.

        x_rot = x · cos(mθ) + rotate(x) · sin(mθ)
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    rotary_dim = x.shape[-1] if rotary_dim is None else rotary_dim
    _check_shapes(x, positions, rotary_dim)
    if positions.ndim == 2 and x.ndim == 4:
        positions = positions[:, None, :]  # (batch, 1, seq): the same for every head
    cos, sin = rope_cos_sin(positions, rotary_dim, base, scaling=scaling)  # (..., seq, r/2)
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    if layout == "half":
        rotated = rope_cached(x_rot, cos, sin)  # (..., seq, rotary_dim)
    else:
        rotated = _rope_interleaved_complex(x_rot, cos, sin)
    return torch.cat([rotated, x_pass], dim=-1) if rotary_dim < x.shape[-1] else rotated


def apply_rope_complex(x: Tensor, positions: Tensor, *, base: float = 10000.0) -> Tensor:
    """The interleaved layout via complex numbers, as in Meta's Llama reference:
    view pairs (x[2i], x[2i+1]) as x[2i] + i·x[2i+1] and multiply by e^{i·mθ}."""
    _check_shapes(x, positions, x.shape[-1])
    theta = rope_frequencies(x.shape[-1], base)
    angles = positions.float()[..., None] * theta  # (seq, d/2)
    z = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))  # (..., seq, d/2)
    return (
        torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2).to(x.dtype)
    )


def half_to_interleaved_permutation(dim: int) -> Tensor:
    """perm with  x_half = x_interleaved[..., perm]:  [0, 2, 4, …, 1, 3, 5, …].

    Then apply_rope(x[..., perm], layout="half") == apply_rope(x, layout="interleaved")[..., perm].
    """
    if dim <= 0 or dim % 2:
        raise ValueError(f"dim must be a positive even int, got {dim}")
    return torch.cat([torch.arange(0, dim, 2), torch.arange(1, dim, 2)])


def qk_weight_permutation(num_heads: int, head_dim: int) -> Tensor:
    """Row permutation that converts a q or k projection (nn.Linear weight, out × in) trained
    with the interleaved layout into one for the half layout: W_half = W_interleaved[perm].

    This is what the Llama checkpoint converter to Hugging Face does; v and o are unchanged.
    """
    per_head = half_to_interleaved_permutation(head_dim)
    return torch.cat([h * head_dim + per_head for h in range(num_heads)])


class RotaryEmbedding(PositionScheme):
    """RoPE as a position scheme: rotates q and k, leaves the embeddings and scores alone."""

    def __init__(
        self,
        head_dim: int,
        base: float = 10000.0,
        *,
        layout: str = "half",
        scaling: dict | None = None,
    ):
        super().__init__()
        rope_frequencies(head_dim, base)  # validates
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        self.base, self.layout, self.scaling = base, layout, scaling

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        """q: (..., q_len, d) takes the last q_len positions; k: (..., k_len, d) all of them."""
        q_pos = positions[..., positions.shape[-1] - q.shape[-2] :]
        kw = dict(base=self.base, layout=self.layout, scaling=self.scaling)
        return apply_rope(q, q_pos, **kw), apply_rope(k, positions, **kw)


def rope_decay_bound(distances: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """The long-term decay curve of RoFormer (Su et al., section 3.4.3):

        (1 / (d/2)) · Σ_{j=1}^{d/2} |S_j|,   S_j = Σ_{k=0}^{j−1} e^{i·r·θ_k},   r = m − n.

    It bounds how large q_m·k_n can be, relative to the content, as the distance r grows
    (by Abel summation, with the pairwise products of q and k as the other factor).
    Returns one value per distance.
    """
    theta = rope_frequencies(dim, base).double()  # (d/2,)
    phases = distances.double()[:, None] * theta[None, :]  # (n, d/2)
    partial = torch.cumsum(torch.polar(torch.ones_like(phases), phases), dim=-1)  # S_1 … S_{d/2}
    return partial.abs().mean(-1).float()
