"""Graders for notebook 10 · Positions in today's models: partial rotary, M-RoPE, MLA.

Every truth here is computed in float64 by the small helpers below, independently of the
library's answers (``posenc.rope``, ``posenc.mrope``, ``posenc.mla``), which the learner may
not call: see :data:`OFF_LIMITS`, registered with each exercise.
"""

from __future__ import annotations

import math

import torch

from posenc.grading.core import (
    Case,
    Mismatch,
    Mistakes,
    call,
    exercise,
    expect_tensor,
    randn,
)

NOTEBOOK = "10_positions_in_todays_models"

# What each exercise may not call: the library's own answer earns no credit.
OFF_LIMITS: dict[str, tuple[str, ...]] = {
    "apply_partial_rope": ("posenc.rope.apply_rope", "posenc.rope.RotaryEmbedding"),
    "mrope_position_ids": ("posenc.mrope.mrope_position_ids", "posenc.mrope.axial_grid_ids"),
    "apply_mrope": ("posenc.mrope.apply_mrope", "posenc.mrope.sectioned_angles"),
    "mla_scores_absorbed": ("posenc.mla.mla_scores_absorbed", "posenc.mla.mla_scores_decompressed"),
}


# --- float64 truths ----------------------------------------------------------------------


def _theta64(dim: int, base: float) -> torch.Tensor:
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)


def _rotate_pairs64(x, angles, layout="half"):
    """x: (..., seq, 2p) float64, angles (..., seq, p): turn pair i by angles[..., i]."""
    cos, sin = angles.cos(), angles.sin()
    if layout == "half":
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
    xe, xo = x[..., 0::2], x[..., 1::2]
    return torch.stack([xe * cos - xo * sin, xe * sin + xo * cos], dim=-1).flatten(-2)


def partial_rope64(x, positions, rotary_dim, base=10000.0, *, theta_dim=None, layout="half"):
    """RoPE on x[..., :rotary_dim] with θ_i = base^(−2i/rotary_dim); the rest unchanged."""
    x = x.double()
    theta = _theta64(theta_dim or rotary_dim, base)[: rotary_dim // 2]
    angles = positions.double()[:, None] * theta  # (seq, r/2)
    rot = _rotate_pairs64(x[..., :rotary_dim], angles, layout)
    return torch.cat([rot, x[..., rotary_dim:]], dim=-1)


# --- apply_partial_rope ------------------------------------------------------------------


def _partial_mistakes(x, positions, rotary_dim, base) -> Mistakes:
    d = x.shape[-1]
    last = x.double().clone()
    last[..., d - rotary_dim :] = partial_rope64(
        x[..., d - rotary_dim :], positions, rotary_dim, base
    )
    return Mistakes(
        {
            "frequencies computed over the whole head: θ_i = base^(−2i/rotary_dim), with "
            "rotary_dim, not head_dim, in the exponent (Hugging Face's partial_rotary_factor "
            "builds inv_freq from rotary_dim)": lambda: partial_rope64(
                x, positions, rotary_dim, base, theta_dim=d
            ),
            "the last rotary_dim features were rotated; GPT-NeoX, Phi and GLM rotate the "
            "first rotary_dim and pass the rest through": lambda: last,
            "the whole head was rotated; only the first rotary_dim features turn": lambda: (
                partial_rope64(x, positions, d, base)
            ),
            "interleaved pairs (x[2i], x[2i+1]); this exercise pairs x[i] with "
            "x[i + rotary_dim/2] (rotate_half on the rotary slice)": lambda: partial_rope64(
                x, positions, rotary_dim, base, layout="interleaved"
            ),
            "rotate_half was applied over the whole head, pairing x[i] with x[i + head_dim/2]; "
            "pair within the rotary slice": lambda: _half_over_head(x, positions, rotary_dim, base),
        }
    )


def _half_over_head(x, positions, rotary_dim, base):
    """The classic slip: cos/sin built for rotary_dim, rotate_half over the whole head."""
    d = x.shape[-1]
    x = x.double()
    theta = _theta64(rotary_dim, base)
    ang = positions.double()[:, None] * theta
    cos = torch.cat([ang.cos(), ang.cos(), torch.ones(len(positions), d - rotary_dim)], -1)
    sin = torch.cat([ang.sin(), ang.sin(), torch.zeros(len(positions), d - rotary_dim)], -1)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], -1) * sin


def _partial_case(label, seed, shape, positions, rotary_dim, base=None) -> Case:
    def run(fn):
        x = randn(*shape, seed=seed)
        args = (x, positions, rotary_dim)
        out = call(fn, *args) if base is None else call(fn, *args, base=base)
        b = base or 10000.0
        if isinstance(out, torch.Tensor) and out.shape[-1] == rotary_dim < shape[-1]:
            raise Mismatch(
                f"{label}: only the rotated features came back; concatenate the "
                "pass-through features x[..., rotary_dim:] after them",
                specific=True,
            )
        expect_tensor(
            out,
            partial_rope64(x, positions, rotary_dim, b).float(),
            label,
            _partial_mistakes(x, positions, rotary_dim, b),
        )

    return Case(label, run)


def _pass_through_case() -> Case:
    label = "features past rotary_dim come back unchanged, bit for bit"

    def run(fn):
        x = randn(2, 3, 7, 24, seed=31)
        out = call(fn, x, torch.arange(100, 107), 8)
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise Mismatch(f"{label}: expected shape {tuple(x.shape)}")
        if not torch.equal(out[..., 8:], x[..., 8:]):
            raise Mismatch(f"{label}: they changed; rotate only x[..., :rotary_dim]", specific=True)

    return Case(label, run)


@exercise("apply_partial_rope", NOTEBOOK, OFF_LIMITS["apply_partial_rope"])
def apply_partial_rope_cases() -> list[Case]:
    pos = torch.arange
    return [
        _partial_case("GPT-NeoX 25 %: (seq 6, dim 32), rotary_dim 8", 1, (6, 32), pos(6), 8),
        _partial_case(
            "Phi 50 %: (batch 2, heads 4, seq 5, dim 16), rotary 8", 2, (2, 4, 5, 16), pos(5), 8
        ),
        _partial_case(
            "GLM half: dim 64, rotary 32, positions 300 …", 3, (9, 64), pos(300, 309), 32
        ),
        _partial_case("rotary_dim = dim (plain RoPE)", 4, (4, 12), pos(4), 12),
        _partial_case("rotary 2 of 10, base 500000", 5, (3, 7, 10), pos(7), 2, 500000.0),
        _partial_case("one token at position 0", 6, (1, 16), pos(1), 4),
        _pass_through_case(),
    ]


# --- mrope_position_ids ------------------------------------------------------------------


def mrope_ids64(segments, *, resume="max", swap_hw=False, image_t="start"):
    """(3, seq) ids; the switches model the classic mistakes."""
    parts, start = [], 0
    for kind, size in segments:
        if kind == "text":
            parts.append(torch.arange(start, start + size).expand(3, size))
            start += size
            continue
        rows, cols = size
        r = torch.arange(rows).repeat_interleave(cols)
        c = torch.arange(cols).repeat(rows)
        if swap_hw:
            r, c = c, r
        t = (
            torch.zeros(rows * cols, dtype=torch.long)
            if image_t == "start"
            else torch.arange(rows * cols)
        )
        parts.append(start + torch.stack([t, r, c]))
        start += {"max": max(rows, cols), "count": rows * cols, "plus_one": max(rows, cols) + 1}[
            resume
        ]
    return torch.cat(parts, dim=1) if parts else torch.zeros(3, 0, dtype=torch.long)


def _ids_case(label, segments) -> Case:
    def run(fn):
        out = call(fn, segments)
        expected = mrope_ids64(segments)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            raise Mismatch(f"{label}: position ids must be integers (torch.long)", specific=True)
        mistakes = Mistakes(
            {
                "the text after an image resumes at the image's start + its token count; "
                "Qwen2-VL resumes at start + max(rows, cols) (one past the largest id used)": (
                    lambda: mrope_ids64(segments, resume="count")
                ),
                "the text after an image resumes one id too late: the next id is "
                "start + max(rows, cols)": lambda: mrope_ids64(segments, resume="plus_one"),
                "height and width swapped: row r of the grid is the *height* id, raster order "
                "walks the columns fastest": lambda: mrope_ids64(segments, swap_hw=True),
                "the temporal id walks the patches; a still image has one temporal id, the "
                "image's start, for every patch": lambda: mrope_ids64(segments, image_t="walk"),
            }
        )
        expect_tensor(out, expected, label, mistakes, atol=0, rtol=0)

    return Case(label, run)


@exercise("mrope_position_ids", NOTEBOOK, OFF_LIMITS["mrope_position_ids"])
def mrope_position_ids_cases() -> list[Case]:
    return [
        _ids_case("text only (5 tokens)", [("text", 5)]),
        _ids_case("one 2×3 image", [("image", (2, 3))]),
        _ids_case("text, 3×2 image, text", [("text", 3), ("image", (3, 2)), ("text", 4)]),
        _ids_case("text, 4×4 image, text", [("text", 2), ("image", (4, 4)), ("text", 2)]),
        _ids_case(
            "two images between text",
            [("text", 1), ("image", (2, 5)), ("text", 2), ("image", (3, 1)), ("text", 1)],
        ),
    ]


# --- apply_mrope -------------------------------------------------------------------------


def mrope64(x, ids, sections, base=10000.0, *, order=(0, 1, 2), layout="half", only_t=False):
    """Sectioned RoPE truth: pair i turns by ids[c(i)] · θ_i, float64."""
    dim = x.shape[-1]
    theta = _theta64(dim, base)
    owner = torch.repeat_interleave(torch.tensor(order[: len(sections)]), torch.tensor(sections))
    if only_t:
        owner = torch.zeros_like(owner)
    angles = ids.double()[owner].T * theta  # (seq, d/2)
    return _rotate_pairs64(x.double(), angles, layout)


def _mrope_case(label, seed, shape, segments, sections, base=None) -> Case:
    def run(fn):
        x = randn(*shape, seed=seed)
        ids = mrope_ids64(segments)
        out = call(fn, x, ids, sections) if base is None else call(fn, x, ids, sections, base=base)
        b = base or 10000.0
        args = (x, ids, sections, b)
        mistakes = Mistakes(
            {
                "sections in the wrong order: the first section of pairs reads the temporal "
                "id, then height, then width": lambda: mrope64(*args, order=(2, 1, 0)),
                "every pair turned by the temporal id alone (1-D RoPE); pair i must read the id "
                "of its section": lambda: mrope64(*args, only_t=True),
                "interleaved pairs; Qwen2-VL pairs x[i] with x[i + d/2] (rotate_half)": lambda: (
                    mrope64(*args, layout="interleaved")
                ),
            }
        )
        expect_tensor(out, mrope64(*args).float(), label, mistakes)

    return Case(label, run)


def _text_is_rope_case() -> Case:
    label = "on text alone (t = h = w) M-RoPE equals 1-D RoPE"

    def run(fn):
        x = randn(2, 6, 16, seed=41)
        ids = torch.arange(6).expand(3, 6)
        out = call(fn, x, ids, (2, 3, 3))
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise Mismatch(f"{label}: expected shape {tuple(x.shape)}")
        if not torch.allclose(out.double(), partial_rope64(x, torch.arange(6), 16), atol=1e-5):
            raise Mismatch(f"{label}: it differs; every section must use the same frequencies")

    return Case(label, run)


@exercise("apply_mrope", NOTEBOOK, OFF_LIMITS["apply_mrope"])
def apply_mrope_cases() -> list[Case]:
    mixed = [("text", 3), ("image", (3, 2)), ("text", 4)]
    return [
        _mrope_case(
            "dim 16, sections (2, 3, 3), text + image + text", 1, (13, 16), mixed, (2, 3, 3)
        ),
        _mrope_case(
            "Qwen2-VL: dim 128, sections (16, 24, 24)", 2, (2, 13, 128), mixed, (16, 24, 24)
        ),
        _mrope_case("heads 4, dim 32, sections (4, 6, 6)", 3, (1, 4, 13, 32), mixed, (4, 6, 6)),
        _mrope_case(
            "base 1000000, 4×4 image",
            4,
            (20, 32),
            [("text", 2), ("image", (4, 4)), ("text", 2)],
            (4, 6, 6),
            1e6,
        ),
        _text_is_rope_case(),
    ]


# --- mla_scores_absorbed -----------------------------------------------------------------


def mla64(q_nope, q_rope, c_kv, k_rope, w_uk, positions, *, rope=True, scale="both"):
    """(heads, seq, seq) scores from keys rebuilt in float64."""
    q_nope, q_rope, c_kv, k_rope, w_uk = (t.double() for t in (q_nope, q_rope, c_kv, k_rope, w_uk))
    k_nope = torch.einsum("hnc,sc->hsn", w_uk, c_kv)
    scores = q_nope @ k_nope.transpose(-1, -2)
    if rope:
        d_r = q_rope.shape[-1]
        qr = partial_rope64(q_rope, positions, d_r)
        kr = partial_rope64(k_rope, positions, d_r)
        scores = scores + qr @ kr.T
    d = {"both": q_nope.shape[-1] + q_rope.shape[-1], "nope": q_nope.shape[-1], "none": 1}[scale]
    return scores / math.sqrt(d)


def _mla_case(label, seed, heads, seq, d_nope, d_rope, d_c, start=0) -> Case:
    def run(fn):
        q_nope, q_rope = (
            randn(heads, seq, d_nope, seed=seed),
            randn(heads, seq, d_rope, seed=seed + 1),
        )
        c_kv, k_rope = randn(seq, d_c, seed=seed + 2), randn(seq, d_rope, seed=seed + 3)
        w_uk = randn(heads, d_nope, d_c, seed=seed + 4) / math.sqrt(d_c)
        positions = torch.arange(start, start + seq)
        args = (q_nope, q_rope, c_kv, k_rope, w_uk, positions)
        out = call(fn, *args)
        mistakes = Mistakes(
            {
                "the rotary part is missing: add RoPE(q_rope, i) · RoPE(k_rope, j)": lambda: mla64(
                    *args, rope=False, scale="both"
                ),
                "scaled by √d_nope; the score has d_nope + d_rope dimensions, scale by "
                "√(d_nope + d_rope)": lambda: mla64(*args, scale="nope"),
                "no 1/√d scaling": lambda: mla64(*args, scale="none"),
            }
        )
        expect_tensor(out, mla64(*args).float(), label, mistakes, atol=1e-4, rtol=1e-4)

    return Case(label, run)


@exercise("mla_scores_absorbed", NOTEBOOK, OFF_LIMITS["mla_scores_absorbed"])
def mla_scores_absorbed_cases() -> list[Case]:
    return [
        _mla_case("1 head, seq 4, d_nope 8, d_rope 4, d_c 6", 1, 1, 4, 8, 4, 6),
        _mla_case("4 heads, seq 7, d_nope 16, d_rope 8, d_c 12", 2, 4, 7, 16, 8, 12),
        _mla_case(
            "DeepSeek-V2 shape per head: d_nope 128, d_rope 64, d_c 512", 3, 2, 5, 128, 64, 512
        ),
        _mla_case("positions 1000 …", 4, 3, 6, 16, 8, 10, start=1000),
    ]


# --- drills of notebook 09 that come from this notebook ----------------------------------

# Registered by notebook 09's grader module once 09 holds their cells (drill name → exercise
# here); until then 09's check cells and its registered drills would disagree.
DRILLS_FOR_09 = {
    "drill_apply_partial_rope": "apply_partial_rope",
    "drill_mrope_position_ids": "mrope_position_ids",
}
