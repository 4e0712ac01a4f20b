"""The RoPE-scaling study: mechanics on a tiny corpus (the committed results carry the ranking)."""

import pytest
from conftest import tiny_settings

from posenc.experiments.scaling_study import (
    DYNAMIC_FACTOR,
    FINETUNE_METHODS,
    METHODS,
    merge_results,
    run_scaling_study,
    scaling_config,
    spread,
    study_factor,
    verdict,
)


def test_scaling_configs_follow_hugging_face_keys():
    assert scaling_config("rope", 4.0, 32) is None
    assert scaling_config("linear", 0.5, 32) == {"rope_type": "linear", "factor": 1.0}
    cfg = scaling_config("llama3", 8.0, 32)
    assert cfg["original_max_position_embeddings"] == 32 and cfg["high_freq_factor"] == 4.0


def test_dynamic_ntk_keeps_its_config_factor_at_every_length():
    """As Hugging Face runs it: one factor in the config, the base follows the length."""
    assert [study_factor("dynamic", E, 32) for E in (64, 128, 256)] == [DYNAMIC_FACTOR] * 3
    assert [study_factor("yarn", E, 32) for E in (64, 128, 256)] == [2.0, 4.0, 8.0]


def test_spread_and_verdicts_by_range():
    s = spread([1.0, 2.0, 3.0])
    assert s == {"mean": 2.0, "sd": 1.0, "min": 1.0, "max": 3.0}
    assert verdict("a", spread([1.0, 1.5]), "b", spread([2.0, 3.0])) == "a"
    assert verdict("a", spread([2.5, 4.0]), "b", spread([2.0, 3.0])) == "tie"
    assert verdict("a", spread([5.0]), "b", spread([2.0, 3.0])) == "b"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Seeds 0 and 1 of a tiny study, run once for the tests below (a few seconds)."""
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(12):  # the text_folder corpus of conftest, for a module-wide fixture
        (folder / f"f{i:02d}.py").write_text(f"def f{i}(x):\n    return x * {i} + 1\n" * 150)
    s = tiny_settings(steps=3)
    kw = dict(finetune_steps=2, eval_every=1, corpus_path=str(folder), show_progress=False)
    both = run_scaling_study(s, seeds=(0, 1), **kw)
    return [{**both, "per_seed": [run]} for run in both["per_seed"]]  # as if run apart


def test_study_runs_every_method_and_fine_tunes(two_runs):
    r = merge_results(two_runs[:1])
    assert set(r["ppl"]) == set(METHODS)
    at_L = {m: r["ppl"][m]["8"]["mean"] for m in METHODS}
    assert len(set(at_L.values())) == 1, "at the training length every method is plain RoPE"
    assert r["ppl"]["linear"]["64"] != r["ppl"]["rope"]["64"]
    assert set(r["finetune_at_2L"]) == set(FINETUNE_METHODS)
    assert list(r["finetune_at_2L"]["yarn"]) == ["0", "1", "2"]
    plain_start = r["finetune_at_2L"]["rope"]["0"]["mean"]
    assert plain_start == pytest.approx(r["ppl"]["rope"]["16"]["mean"]), "control starts as RoPE"
    assert r["regime"]["llama2"]["slow_pairs"] == 18
    assert r["pairs"]["16"]["linear"]["interpolated"] == r["regime"]["head_dim"] // 2


def test_merged_seeds_pool_the_spread(two_runs):
    merged = merge_results(two_runs)
    assert merged["seeds"] == [0, 1]
    a, b = (run["per_seed"][0]["ppl"]["rope"]["32"] for run in two_runs)
    cell = merged["ppl"]["rope"]["32"]
    assert cell["min"] == min(a, b) and cell["max"] == max(a, b)
    assert cell["mean"] == pytest.approx((a + b) / 2)
    with pytest.raises(ValueError, match="repeat"):
        merge_results([two_runs[0], two_runs[0]])
