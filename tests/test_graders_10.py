"""Notebook 10 graders reject the classic mistakes and accept right answers written the ways
people write them (Hugging Face, GPT-NeoX, complex numbers, einsum, numpy, loops)."""

import importlib
import math

import numpy as np
import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected, unwatched_copy
from solution_code import solution_namespace

from posenc.grading import EXERCISES, nb10_modern
from posenc.grading.nb10_modern import DRILLS_FOR_09, OFF_LIMITS

# The grader's mistake models, in a copy the reference watch does not flag (grader_helpers).
_models = unwatched_copy(nb10_modern)
mla64, mrope64, mrope_ids64, partial_rope64 = (
    _models.mla64,
    _models.mrope64,
    _models.mrope_ids64,
    _models.partial_rope64,
)

NB = SOLUTIONS / "10_positions_in_todays_models.ipynb"


def _rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


# --- apply_partial_rope ------------------------------------------------------------------


def partial_hf(x, positions, rotary_dim, base=10000.0):
    """Hugging Face style: inv_freq from rotary_dim, emb = cat(freqs, freqs), rotate_half."""
    inv_freq = 1.0 / (
        base ** (torch.arange(0, rotary_dim, 2, dtype=torch.int64).float() / rotary_dim)
    )
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    x_rot, x_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    x_rot = x_rot * emb.cos() + _rotate_half(x_rot) * emb.sin()
    return torch.cat((x_rot, x_pass), dim=-1)


def partial_neox(x, positions, rotary_dim, base=10000.0):
    """GPT-NeoX style: einsum outer product, query_rot / query_pass slices."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dim, 2).float() / rotary_dim))
    freqs = torch.einsum("i,j->ij", positions.float(), inv_freq)
    cos, sin = torch.cat([freqs.cos()] * 2, -1), torch.cat([freqs.sin()] * 2, -1)
    query_rot, query_pass = x[..., :rotary_dim], x[..., rotary_dim:]
    half = rotary_dim // 2
    rotated = torch.cat((-query_rot[..., half:], query_rot[..., :half]), dim=-1)
    return torch.cat((query_rot * cos + rotated * sin, query_pass), dim=-1)


def partial_complex(x, positions, rotary_dim, base=10000.0):
    """Complex numbers: (x[i] + i·x[i + r/2]) · e^{i m θ_i}, float64 angles."""
    half = rotary_dim // 2
    theta = base ** (-torch.arange(half, dtype=torch.float64) * 2 / rotary_dim)
    rot = torch.polar(
        torch.ones(len(positions), half, dtype=torch.float64), positions[:, None] * theta
    )
    z = torch.complex(x[..., :half].double(), x[..., half:rotary_dim].double()) * rot
    return torch.cat([z.real, z.imag, x[..., rotary_dim:].double()], -1).float()


def _wrong_partial(doc, **kw):
    def fn(x, positions, rotary_dim, base=10000.0):
        return partial_rope64(x, positions, rotary_dim, base, **kw).float()

    fn.__doc__ = doc
    return fn


def partial_last(x, positions, rotary_dim, base=10000.0):
    """rotates the last rotary_dim features"""
    d = x.shape[-1]
    rot = partial_hf(x[..., d - rotary_dim :], positions, rotary_dim, base)
    return torch.cat([x[..., : d - rotary_dim], rot], -1)


def partial_whole_head(x, positions, rotary_dim, base=10000.0):
    """ignores rotary_dim"""
    return partial_hf(x, positions, x.shape[-1], base)


def partial_only_rotated(x, positions, rotary_dim, base=10000.0):
    """drops the pass-through features"""
    return partial_hf(x, positions, rotary_dim, base)[..., :rotary_dim]


def partial_half_over_head(x, positions, rotary_dim, base=10000.0):
    """cos/sin padded to the head, rotate_half over the whole head"""
    d = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, rotary_dim, 2).float() / rotary_dim))
    f = positions.float()[:, None] * inv
    n = len(positions)
    cos = torch.cat([f.cos(), f.cos(), torch.ones(n, d - rotary_dim)], -1)
    sin = torch.cat([f.sin(), f.sin(), torch.zeros(n, d - rotary_dim)], -1)
    return x * cos + _rotate_half(x) * sin


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_wrong_partial("θ over head_dim", theta_dim=10**6), None),
        (partial_last, "last rotary_dim"),
        (partial_whole_head, "whole head was rotated"),
        (_wrong_partial("interleaved", layout="interleaved"), "interleaved"),
        (partial_only_rotated, "pass-through"),
        (partial_half_over_head, "rotate_half was applied over the whole head"),
    ],
)
def test_partial_rope_grader_rejects(wrong, hint):
    assert_rejected("apply_partial_rope", wrong, hint)


def partial_theta_over_head(x, positions, rotary_dim, base=10000.0):
    """exponent over head_dim"""
    d = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, rotary_dim, 2).float() / d))
    f = positions.float()[:, None] * inv
    x_rot = x[..., :rotary_dim]
    x_rot = x_rot * torch.cat([f.cos()] * 2, -1) + _rotate_half(x_rot) * torch.cat(
        [f.sin()] * 2, -1
    )
    return torch.cat([x_rot, x[..., rotary_dim:]], -1)


def test_partial_theta_over_head_is_named():
    assert_rejected("apply_partial_rope", partial_theta_over_head, "whole head: θ_i")


@pytest.mark.parametrize("right", [partial_hf, partial_neox, partial_complex])
def test_partial_rope_grader_accepts(right):
    assert_accepted("apply_partial_rope", right)


# --- mrope_position_ids ------------------------------------------------------------------


def ids_loop(segments):
    """Plain Python lists, one token at a time."""
    t, h, w, nxt = [], [], [], 0
    for kind, size in segments:
        if kind == "text":
            for _ in range(size):
                t.append(nxt), h.append(nxt), w.append(nxt)
                nxt += 1
        else:
            rows, cols = size
            for r in range(rows):
                for c in range(cols):
                    t.append(nxt), h.append(nxt + r), w.append(nxt + c)
            nxt += max(rows, cols)
    return torch.tensor([t, h, w], dtype=torch.long).reshape(3, -1)


def ids_meshgrid(segments):
    """torch.meshgrid with indexing='ij', as the Qwen2-VL code builds its grid."""
    parts, st = [], 0
    for kind, size in segments:
        if kind == "text":
            parts.append(torch.arange(size).view(1, -1).expand(3, -1) + st)
            st += size
        else:
            hh, ww = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
            tt = torch.zeros_like(hh)
            parts.append(torch.stack([tt.flatten(), hh.flatten(), ww.flatten()]) + st)
            st += max(size)
    return torch.cat(parts, dim=1)


def ids_numpy(segments):
    """numpy, then torch.from_numpy."""
    cols, st = [], 0
    for kind, size in segments:
        if kind == "text":
            cols.append(np.tile(np.arange(st, st + size), (3, 1)))
            st += size
        else:
            r, c = np.indices(size)
            cols.append(np.stack([np.full(r.size, st), st + r.ravel(), st + c.ravel()]))
            st += max(size)
    return torch.from_numpy(np.concatenate(cols, axis=1).astype(np.int64))


def _wrong_ids(doc, **kw):
    def fn(segments):
        return mrope_ids64(segments, **kw)

    fn.__doc__ = doc
    return fn


def ids_float(segments):
    """float ids"""
    return mrope_ids64(segments).float()


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_wrong_ids("resumes after rows·cols", resume="count"), "token count"),
        (_wrong_ids("resumes one late", resume="plus_one"), "one id too late"),
        (_wrong_ids("h and w swapped", swap_hw=True), "swapped"),
        (_wrong_ids("temporal walks", image_t="walk"), "temporal id walks"),
        (ids_float, "integers"),
    ],
)
def test_mrope_ids_grader_rejects(wrong, hint):
    assert_rejected("mrope_position_ids", wrong, hint)


@pytest.mark.parametrize("right", [ids_loop, ids_meshgrid, ids_numpy])
def test_mrope_ids_grader_accepts(right):
    assert_accepted("mrope_position_ids", right)


# --- apply_mrope -------------------------------------------------------------------------


def mrope_hf(x, position_ids, sections, base=10000.0):
    """Hugging Face 5.x Qwen2-VL: freqs (3, seq, d/2), split by sections, take i % 3, cat twice."""
    dim = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float) / dim))
    freqs = position_ids[..., None].float() * inv_freq  # (3, seq, d/2)
    freq = torch.cat([m[i % 3] for i, m in enumerate(freqs.split(list(sections), dim=-1))], -1)
    emb = torch.cat((freq, freq), dim=-1)
    return x * emb.cos() + _rotate_half(x) * emb.sin()


def mrope_hf_old(x, position_ids, sections, base=10000.0):
    """Older Hugging Face: cos over the full dim, sections doubled, split over d."""
    dim = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)  # (3, seq, d)
    doubled = list(sections) * 2
    cos = torch.cat([m[i % 3] for i, m in enumerate(emb.cos().split(doubled, dim=-1))], -1)
    sin = torch.cat([m[i % 3] for i, m in enumerate(emb.sin().split(doubled, dim=-1))], -1)
    return x * cos + _rotate_half(x) * sin


def mrope_gather(x, position_ids, sections, base=10000.0):
    """Gather each pair's position with an index, complex numbers."""
    half = x.shape[-1] // 2
    theta = base ** (-2 * torch.arange(half, dtype=torch.float64) / x.shape[-1])
    owner = torch.cat([torch.full((n,), a) for a, n in enumerate(sections)])
    pos = position_ids.double().T.gather(1, owner.expand(position_ids.shape[1], -1))
    z = torch.complex(x[..., :half].double(), x[..., half:].double()) * torch.polar(
        torch.ones_like(pos), pos * theta
    )
    return torch.cat([z.real, z.imag], -1).float()


def _wrong_mrope(doc, **kw):
    def fn(x, position_ids, sections, base=10000.0):
        return mrope64(x, position_ids, sections, base, **kw).float()

    fn.__doc__ = doc
    return fn


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_wrong_mrope("w, h, t order", order=(2, 1, 0)), "wrong order"),
        (_wrong_mrope("temporal only", only_t=True), "temporal id alone"),
        (_wrong_mrope("interleaved", layout="interleaved"), "interleaved"),
    ],
)
def test_mrope_grader_rejects(wrong, hint):
    assert_rejected("apply_mrope", wrong, hint)


@pytest.mark.parametrize("right", [mrope_hf, mrope_hf_old, mrope_gather])
def test_mrope_grader_accepts(right):
    assert_accepted("apply_mrope", right, minimum=5)


# --- mla_scores_absorbed -----------------------------------------------------------------


def _rope_half(x, positions):
    d = x.shape[-1]
    inv = 1.0 / (10000.0 ** (torch.arange(0, d, 2).float() / d))
    f = positions.float()[:, None] * inv
    return x * torch.cat([f.cos()] * 2, -1) + _rotate_half(x) * torch.cat([f.sin()] * 2, -1)


def mla_einsum(q_nope, q_rope, c_kv, k_rope, w_uk, positions):
    """Absorb with einsum, DeepSeek's inference path."""
    q_lat = torch.einsum("hsn,hnc->hsc", q_nope, w_uk)
    scores = torch.einsum("hsc,tc->hst", q_lat, c_kv)
    scores = scores + torch.einsum(
        "hsr,tr->hst", _rope_half(q_rope, positions), _rope_half(k_rope, positions)
    )
    return scores / math.sqrt(q_nope.shape[-1] + q_rope.shape[-1])


def mla_loop(q_nope, q_rope, c_kv, k_rope, w_uk, positions):
    """A loop over heads with W_UKᵀ q, softmax_scale as a multiplier."""
    scale = (q_nope.shape[-1] + q_rope.shape[-1]) ** -0.5
    k_r = _rope_half(k_rope, positions)
    out = []
    for h in range(q_nope.shape[0]):
        q_lat = q_nope[h] @ w_uk[h]  # (seq, d_c)
        out.append((q_lat @ c_kv.T + _rope_half(q_rope[h], positions) @ k_r.T) * scale)
    return torch.stack(out)


def mla_concat(q_nope, q_rope, c_kv, k_rope, w_uk, positions):
    """Rebuild keys, concatenate [nope | rope] parts and do one matmul (the training path)."""
    heads = q_nope.shape[0]
    k_nope = torch.einsum("hnc,sc->hsn", w_uk, c_kv)
    k = torch.cat([k_nope, _rope_half(k_rope, positions).expand(heads, -1, -1)], -1)
    q = torch.cat([q_nope, _rope_half(q_rope, positions)], -1)
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])


def _wrong_mla(doc, **kw):
    def fn(*args):
        return mla64(*args, **kw).float()

    fn.__doc__ = doc
    return fn


def mla_rope_on_latent(q_nope, q_rope, c_kv, k_rope, w_uk, positions):
    """rotates the absorbed query and the latent instead of using the decoupled key"""
    q_lat = torch.einsum("hsn,hnc->hsc", q_nope, w_uk)
    even = c_kv.shape[-1] - c_kv.shape[-1] % 2
    c_rot = torch.cat([_rope_half(c_kv[..., :even], positions), c_kv[..., even:]], -1)
    q_rot = torch.cat([_rope_half(q_lat[..., :even], positions), q_lat[..., even:]], -1)
    return q_rot @ c_rot.T / math.sqrt(q_nope.shape[-1] + q_rope.shape[-1])


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (_wrong_mla("no rotary part", rope=False), "rotary part is missing"),
        (_wrong_mla("scaled by √d_nope", scale="nope"), "√d_nope"),
        (_wrong_mla("no scaling", scale="none"), "no 1/√d"),
        (mla_rope_on_latent, None),
    ],
)
def test_mla_grader_rejects(wrong, hint):
    assert_rejected("mla_scores_absorbed", wrong, hint)


@pytest.mark.parametrize("right", [mla_einsum, mla_loop, mla_concat])
def test_mla_grader_accepts(right):
    assert_accepted("mla_scores_absorbed", right, minimum=4)


# --- registry, off-limits, drills, the solution notebook ---------------------------------


def test_off_limits_name_real_objects_of_registered_exercises():
    for name, dotted in OFF_LIMITS.items():
        assert EXERCISES[name] == "10_positions_in_todays_models"
        for path in dotted:
            module, attr = path.rsplit(".", 1)
            assert hasattr(importlib.import_module(module), attr), path


def test_drills_for_09_reuse_registered_exercises():
    from posenc.grading.core import REGISTRY

    for drill, source in DRILLS_FOR_09.items():
        assert drill.startswith("drill_") and source in REGISTRY
        assert EXERCISES[source] == "10_positions_in_todays_models"


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    for name in ("apply_partial_rope", "mrope_position_ids", "apply_mrope", "mla_scores_absorbed"):
        assert_accepted(name, ns[name], minimum=4)
