"""The RoPE-scaling study: mechanics on a tiny corpus (the committed results carry the ranking)."""

from conftest import tiny_settings

from posenc.experiments.scaling_study import METHODS, run_scaling_study, scaling_config


def test_scaling_configs_follow_hugging_face_keys():
    assert scaling_config("rope", 4.0, 32) is None
    assert scaling_config("linear", 0.5, 32) == {"rope_type": "linear", "factor": 1.0}
    cfg = scaling_config("llama3", 8.0, 32)
    assert cfg["original_max_position_embeddings"] == 32 and cfg["high_freq_factor"] == 4.0


def test_study_runs_every_method_and_fine_tunes(text_folder):
    s = tiny_settings(steps=6)
    r = run_scaling_study(
        s, finetune_steps=4, eval_every=2, corpus_path=str(text_folder), show_progress=False
    )
    assert set(r["ppl"]) == set(METHODS)
    at_L = {m: r["ppl"][m]["8"] for m in METHODS}
    assert len(set(at_L.values())) == 1, "at the training length every method is plain RoPE"
    assert r["ppl"]["linear"]["64"] != r["ppl"]["rope"]["64"]
    assert list(r["finetune_at_2L"]["yarn"]) == ["0", "2", "4"]
