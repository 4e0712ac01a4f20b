"""Notebook 10's library: M-RoPE against Hugging Face's Qwen2-VL, MLA absorption, GLM's 2-D
positions, logN scaling, the rolling KV cache, and the quick study."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from posenc.experiments.model import ModelConfig, TinyLM
from posenc.experiments.modern_study import QUICK, Settings, run_study, unseen_pairs
from posenc.experiments.streaming import dense_losses, recompute_losses, stream_losses
from posenc.glm_rope import apply_glm4_rope, apply_glm_2d_rope, glm_2d_position_ids
from posenc.logn_scaling import LogNScaled, logn_factors
from posenc.mla import mla_scores_absorbed, mla_scores_decompressed, rope_on_content_gap
from posenc.mrope import apply_axial_rope, apply_mrope, axial_grid_ids, mrope_position_ids
from posenc.rope import RotaryEmbedding, apply_rope

ROOT = Path(__file__).resolve().parent.parent
SEGMENTS = [("text", 3), ("image", (2, 4)), ("text", 2), ("image", (3, 3)), ("text", 1)]


def test_mrope_matches_hugging_face_qwen2_vl():
    qwen = pytest.importorskip("transformers.models.qwen2_vl.modeling_qwen2_vl")
    from transformers.models.qwen2_vl.configuration_qwen2_vl import Qwen2VLTextConfig

    cfg = Qwen2VLTextConfig(
        hidden_size=64,
        num_attention_heads=2,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
    )
    ids = mrope_position_ids(SEGMENTS)  # (3, seq)
    x = torch.randn(1, 2, ids.shape[1], 32)
    cos, sin = qwen.Qwen2VLRotaryEmbedding(cfg)(x, ids[:, None, :])  # (1, seq, 32)
    theirs = x * cos[:, None] + qwen.rotate_half(x) * sin[:, None]
    torch.testing.assert_close(apply_mrope(x, ids, (4, 6, 6)), theirs, atol=1e-5, rtol=1e-5)


def test_position_ids_match_hugging_face_get_rope_index():
    qwen = pytest.importorskip("transformers.models.qwen2_vl.modeling_qwen2_vl")
    model = SimpleNamespace(
        config=SimpleNamespace(vision_config=SimpleNamespace(spatial_merge_size=1))
    )
    model.get_vision_position_ids = lambda *a, **k: qwen.Qwen2VLModel.get_vision_position_ids(
        model, *a, **k
    )
    kinds = [0] * 3 + [1] * 8 + [0] * 2 + [1] * 9 + [0]
    types = torch.tensor([kinds])
    grids = torch.tensor([[1, 2, 4], [1, 3, 3]])
    theirs, _ = qwen.Qwen2VLModel.get_rope_index(model, types.clone(), types, image_grid_thw=grids)
    assert torch.equal(mrope_position_ids(SEGMENTS), theirs[:, 0])


def test_text_only_mrope_is_rope_and_axial_grid_is_raster():
    x = torch.randn(5, 16)
    ids = mrope_position_ids([("text", 5)])
    torch.testing.assert_close(apply_mrope(x, ids, (2, 3, 3)), apply_rope(x, torch.arange(5)))
    assert axial_grid_ids(2, 3).tolist() == [[0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2]]
    with pytest.raises(ValueError, match="sections must sum"):
        apply_mrope(x, ids, (2, 2, 2))
    with pytest.raises(ValueError, match="segment kind"):
        mrope_position_ids([("audio", 3)])


def test_axial_rope_scores_depend_only_on_grid_offsets():
    q, k = torch.randn(1, 8).expand(12, 8), torch.randn(1, 8).expand(12, 8)  # 3 × 4 grid
    qs, ks = apply_axial_rope(q.clone(), 3, 4), apply_axial_rope(k.clone(), 3, 4)  # (12, 8)
    # patch (0, 0)·(1, 2) equals patch (1, 1)·(2, 3): the same (Δrow, Δcol) = (1, 2)
    torch.testing.assert_close(qs[0] @ ks[6], qs[5] @ ks[11], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(qs[0] @ ks[6], qs[0] @ ks[9], atol=1e-3)  # (Δrow, Δcol) = (2, 1)


def test_mla_absorption_exact_without_rope_on_content_and_broken_with_it():
    g = torch.Generator().manual_seed(0)
    heads, seq = 3, 6
    q_nope, q_rope = (
        torch.randn(heads, seq, 8, generator=g),
        torch.randn(heads, seq, 4, generator=g),
    )
    c_kv, k_rope = torch.randn(seq, 10, generator=g), torch.randn(seq, 4, generator=g)
    w_uk = torch.randn(heads, 8, 10, generator=g)
    pos = torch.arange(seq)
    args = (q_nope.double(), q_rope.double(), c_kv.double(), k_rope.double(), w_uk.double(), pos)
    torch.testing.assert_close(mla_scores_absorbed(*args), mla_scores_decompressed(*args))
    broken, exact = rope_on_content_gap(q_nope, c_kv, w_uk, pos)
    assert broken > 1.0 and exact < 1e-3


def test_glm_position_ids_and_halves():
    assert glm_2d_position_ids(3, 2).tolist() == [[0, 1, 2, 2, 2], [0, 0, 0, 1, 2]]
    x, ids = torch.randn(5, 16), glm_2d_position_ids(3, 2)
    out = apply_glm_2d_rope(x, ids)
    torch.testing.assert_close(out[:, 8:], apply_rope(x[:, 8:], ids[1]))
    glm4 = apply_glm4_rope(x, torch.arange(5))
    assert torch.equal(glm4[:, 8:], x[:, 8:])


def test_logn_factors_and_scheme():
    f = logn_factors(torch.arange(100), 10)
    assert torch.all(f[:10] == 1.0)
    assert math.isclose(f[99].item(), math.log(100) / math.log(10), rel_tol=1e-6)
    q, k = torch.randn(1, 2, 20, 8), torch.randn(1, 2, 20, 8)
    rq, rk = RotaryEmbedding(8).rotate(q, k, torch.arange(20))
    lq, lk = LogNScaled(RotaryEmbedding(8), 10).rotate(q, k, torch.arange(20))
    assert torch.equal(lk, rk) and torch.equal(lq[..., :10, :], rq[..., :10, :])
    torch.testing.assert_close(lq[..., 19, :], rq[..., 19, :] * math.log(20) / math.log(10))
    with pytest.raises(ValueError, match="train_len"):
        logn_factors(torch.arange(3), 1)


@pytest.fixture(scope="module")
def tiny_rope_model():
    torch.manual_seed(0)
    return TinyLM(ModelConfig(scheme="rope", d_model=16, n_layers=2, n_heads=2)).eval()


def test_rolling_cache_without_eviction_equals_one_forward(tiny_rope_model):
    ids = torch.randint(0, 256, (2, 12))
    targets = torch.randint(0, 256, (2, 12))
    dense = dense_losses(tiny_rope_model, ids, targets)
    for sinks, reassign in [(0, True), (4, False)]:
        streamed = stream_losses(
            tiny_rope_model, ids, targets, cache_size=12, sinks=sinks, reassign=reassign
        )
        torch.testing.assert_close(streamed, dense, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(recompute_losses(tiny_rope_model, ids, targets, 12), dense)


def test_window_positions_do_not_matter_to_rope_but_sink_positions_do(tiny_rope_model):
    ids = torch.randint(0, 256, (1, 14))
    targets = torch.randint(0, 256, (1, 14))
    kw = dict(cache_size=6)
    a = stream_losses(tiny_rope_model, ids, targets, sinks=0, reassign=True, **kw)
    b = stream_losses(tiny_rope_model, ids, targets, sinks=0, reassign=False, **kw)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)  # RoPE sees only distances
    c = stream_losses(tiny_rope_model, ids, targets, sinks=2, reassign=True, **kw)
    d = stream_losses(tiny_rope_model, ids, targets, sinks=2, reassign=False, **kw)
    assert torch.equal(c[:, :6], d[:, :6]) and not torch.allclose(c[:, 8:], d[:, 8:])
    with pytest.raises(ValueError, match="sinks"):
        stream_losses(tiny_rope_model, ids, targets, sinks=6, reassign=True, **kw)


def test_unseen_pairs_counts_llama2_and_the_study():
    assert unseen_pairs(128, 10000.0, 4096) == 18
    s = Settings()
    assert unseen_pairs(s.d_model // s.n_heads, s.rope_base, s.train_len) == 2


def test_quick_study_has_every_row_and_seed():
    results = run_study(Settings(**QUICK), show_progress=False)
    assert len(results["per_seed"]) == 2
    rows = set(results["stream_ppl"])
    assert rows == {"dense", "window", "sinks4", "sinks4_original_positions", "recompute"}
    for cell in results["stream_ppl"]["window"].values():
        assert cell["spread"] >= 0 and math.isfinite(cell["mean"])
    assert set(results["logn"]) == {"plain", "logn"}
    assert set(results["nope_layers"]) == {"rope", "rope_nope4"}
    assert set(results["xpos"]) == {"rope", "xpos"}


def test_committed_family_table_matches_installed_transformers():
    pytest.importorskip("transformers")
    from posenc.model_families import who_uses_what

    committed = json.loads((ROOT / "results" / "modern_families.json").read_text())
    assert committed["rows"] == who_uses_what()


def test_nope_every_fourth_layer_drops_positions_there_only():
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(scheme="rope", d_model=16, n_layers=8, n_heads=2, nope_every=4))
    kinds = [type(b.attn.scheme).__name__ for b in model.blocks]
    assert kinds == ["RotaryEmbedding"] * 3 + ["PositionScheme"] + ["RotaryEmbedding"] * 3 + [
        "PositionScheme"
    ]
    plain = TinyLM(ModelConfig(scheme="rope", d_model=16, n_layers=4, n_heads=2))
    assert all(b.attn.scheme is plain.scheme for b in plain.blocks)


def test_xpos_multiplies_rope_scores_by_a_relative_decay():
    from posenc.xpos import XPos

    q, k = torch.randn(1, 1, 1, 2), torch.randn(1, 1, 1, 2)
    zeta = 0.8 / 2.8  # the one pair of a 2-dim head: (0 + 0.4·2) / (1.4·2)

    def score(scheme, m, n):
        positions = torch.tensor([n, m]) if m > n else torch.tensor([m, n])
        qq, kk = q.expand(1, 1, 2, 2), k.expand(1, 1, 2, 2)
        rq, rk = scheme.rotate(qq.clone(), kk.clone(), positions)
        i, j = (1, 0) if m > n else (0, 1)
        return (rq[0, 0, i] @ rk[0, 0, j]).item()

    rope, xpos = RotaryEmbedding(2), XPos(2, scale_base=8.0)
    for m, n in [(5, 2), (40, 37), (90, 10)]:
        expected = score(rope, m, n) * zeta ** ((m - n) / 8.0)
        assert math.isclose(score(xpos, m, n), expected, rel_tol=1e-4, abs_tol=1e-6)
    model = TinyLM(ModelConfig(scheme="xpos", d_model=16, n_heads=2))
    assert type(model.scheme).__name__ == "XPos"
    with pytest.raises(ValueError, match="xpos"):
        TinyLM(ModelConfig(scheme="xposs"))
