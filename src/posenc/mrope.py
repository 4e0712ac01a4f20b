"""M-RoPE (Qwen2-VL, Wang et al., 2024) and axial 2-D RoPE for image patches.

A token carries three position ids instead of one, (t, h, w): time, row and column. The
d/2 rotary pairs are cut into three consecutive *sections*; pair i turns by

    angle_i = p_{c(i)} · θ_i,   θ_i = base^(−2i/d),   c(i) = which section pair i falls in,

so the fast pairs of the first section see time, the next ones the row, the slowest ones the
column (Qwen2-VL: sections (16, 24, 24) of its 64 pairs). Text tokens get t = h = w, so for
text alone M-RoPE is exactly 1-D RoPE. Image patches share t and take h, w from the grid,
offset by the text before them; the text after an image resumes at 1 + the largest id used.

Axial 2-D RoPE (ViT-style image models) is the same idea with two sections, (row, column).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from posenc.rope import rope_frequencies, rotate_half

QWEN2_VL_SECTIONS = (16, 24, 24)  # pairs for (temporal, height, width), head_dim 128


def mrope_position_ids(segments: Sequence[tuple[str, object]]) -> Tensor:
    """The (3, seq) position ids (t, h, w) of a sequence of text runs and images.

    ``segments``: ("text", n) for n text tokens, ("image", (rows, cols)) for an image cut into
    rows × cols patches (after any patch merging), in reading order. Text: t = h = w = next id.
    Image starting at id s: t = s, h = s + row, w = s + col; the next id is s + max(rows, cols),
    as in Hugging Face's Qwen2-VL ``get_rope_index`` for a still image.
    """
    parts, start = [], 0
    for kind, size in segments:
        if kind == "text":
            n = int(size)
            if n < 0:
                raise ValueError(f"a text segment needs n >= 0 tokens, got {n}")
            parts.append(torch.arange(start, start + n).expand(3, n))  # (3, n)
            start += n
        elif kind == "image":
            rows, cols = (int(v) for v in size)
            if rows < 1 or cols < 1:
                raise ValueError(f"an image needs rows, cols >= 1, got {(rows, cols)}")
            parts.append(start + axial_grid_ids(rows, cols, temporal=True))  # (3, rows·cols)
            start += max(rows, cols)
        else:
            raise ValueError(f"segment kind must be 'text' or 'image', got {kind!r}")
    if not parts:
        return torch.zeros(3, 0, dtype=torch.long)
    return torch.cat(parts, dim=1)


def axial_grid_ids(rows: int, cols: int, *, temporal: bool = False) -> Tensor:
    """Row and column ids of a rows × cols patch grid in raster order: (2, rows·cols), or
    (3, rows·cols) with a leading all-zero temporal row when ``temporal``."""
    r = torch.arange(rows).repeat_interleave(cols)  # 0 0 0 1 1 1 …
    c = torch.arange(cols).repeat(rows)  # 0 1 2 0 1 2 …
    ids = torch.stack([r, c])
    return torch.cat([torch.zeros(1, rows * cols, dtype=torch.long), ids]) if temporal else ids


def sectioned_angles(
    position_ids: Tensor, dim: int, sections: Sequence[int], base: float
) -> Tensor:
    """angle[..., s, i] = position_ids[c(i), ..., s] · θ_i, float32, shape (..., seq, dim // 2).

    position_ids: (n_sections, ..., seq); ``sections`` counts pairs per section, summing to d/2.
    """
    if sum(sections) != dim // 2:
        raise ValueError(f"sections must sum to dim // 2 = {dim // 2} pairs, got {list(sections)}")
    if position_ids.shape[0] != len(sections):
        raise ValueError(
            f"position_ids needs one row per section ({len(sections)}), "
            f"got shape {tuple(position_ids.shape)}"
        )
    theta = rope_frequencies(dim, base)  # (d/2,)
    owner = torch.repeat_interleave(torch.arange(len(sections)), torch.tensor(list(sections)))
    pos = position_ids.float()[owner]  # (d/2, ..., seq): pair i reads its section's id
    return pos.movedim(0, -1) * theta  # (..., seq, d/2)


def apply_mrope(
    x: Tensor,
    position_ids: Tensor,
    sections: Sequence[int] = QWEN2_VL_SECTIONS,
    *,
    base: float = 10000.0,
) -> Tensor:
    """Rotate x (..., seq, dim) with sectioned multi-axis positions, half layout.

    position_ids: (n_sections, seq). Pair i = (x[i], x[i + d/2]) turns by p_{c(i)} · θ_i.
    """
    angles = sectioned_angles(position_ids, x.shape[-1], sections, base)  # (seq, d/2)
    cos = torch.cat([angles.cos(), angles.cos()], dim=-1)  # (seq, d)
    sin = torch.cat([angles.sin(), angles.sin()], dim=-1)
    return (x.float() * cos + rotate_half(x.float()) * sin).to(x.dtype)


def apply_axial_rope(x: Tensor, rows: int, cols: int, *, base: float = 10000.0) -> Tensor:
    """2-D RoPE on a rows × cols patch grid: half the pairs see the row, half the column.
    x: (..., rows·cols, dim) with dim divisible by 4."""
    if x.shape[-1] % 4:
        raise ValueError(f"axial 2-D RoPE needs dim divisible by 4, got {x.shape[-1]}")
    quarter = x.shape[-1] // 4
    return apply_mrope(x, axial_grid_ids(rows, cols), (quarter, quarter), base=base)
