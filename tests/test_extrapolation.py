"""The offline corpus, the tiny LM and the extrapolation study: mechanics, not the ranking."""

import json
import math

import pytest
import torch
from conftest import tiny_settings

from posenc.experiments.data import evaluation_windows, load_corpus, training_batches
from posenc.experiments.extrapolation import (
    Settings,
    main,
    perplexity_from_losses,
    position_buckets,
    run_study,
    train,
)
from posenc.experiments.model import SCHEMES, ModelConfig, TinyLM


def test_corpus_split_by_file_and_hashed(text_folder):
    a = load_corpus(text_folder, train_bytes=20_000, held_out_bytes=3_000)
    b = load_corpus(text_folder, train_bytes=20_000, held_out_bytes=3_000)
    assert a.sha256 == b.sha256 and torch.equal(a.train, b.train)
    assert bytes(a.held_out[:8].tolist()).startswith(b"def f0(")  # file 0 is held out
    assert b"def f0(" not in bytes(a.train.tolist())
    (text_folder / "f03.py").write_text("changed\n" * 500)
    assert load_corpus(text_folder, train_bytes=20_000, held_out_bytes=3_000).sha256 != a.sha256


def test_single_text_file_and_bad_corpora(tmp_path):
    f = tmp_path / "book.txt"
    f.write_text("once upon a time " * 2000)
    c = load_corpus(f, train_bytes=10_000, held_out_bytes=2_000)
    assert len(c.train) == 10_000 and len(c.held_out) == 2_000
    with pytest.raises(ValueError, match="folder or a text file"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "tiny.txt").write_text("x")
    with pytest.raises(ValueError, match="too small"):
        load_corpus(tmp_path / "tiny.txt")


def test_stdlib_corpus_is_deterministic():
    a = load_corpus(train_bytes=50_000, held_out_bytes=10_000)
    b = load_corpus(train_bytes=50_000, held_out_bytes=10_000)
    assert a.sha256 == b.sha256 and len(a.held_out) == 10_000


def test_batches_depend_only_on_seed_and_windows_share_bytes(text_folder):
    c = load_corpus(text_folder, train_bytes=20_000, held_out_bytes=3_000)
    first = [x for x, _ in training_batches(c.train, 4, 16, 3, seed=7)]
    again = [x for x, _ in training_batches(c.train, 4, 16, 3, seed=7)]
    assert all(torch.equal(u, v) for u, v in zip(first, again, strict=True))
    short, _ = evaluation_windows(c.held_out, 16, 256)
    long, targets = evaluation_windows(c.held_out, 64, 256)
    assert short.shape == (16, 16) and long.shape == (4, 64)
    assert torch.equal(short.flatten(), long.flatten()) and torch.equal(
        targets[0, :-1], long[0, 1:]
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_runs_at_8L_except_learned(scheme):
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(scheme=scheme, d_model=32, n_heads=4, max_len=8))
    ids = torch.randint(256, (2, 64))
    if scheme == "learned":
        assert model(ids[:, :8]).shape == (2, 8, 256)
        with pytest.raises(ValueError, match="max_len=8"):
            model(ids)
    else:
        assert model(ids).shape == (2, 64, 256)


def test_training_is_deterministic_and_loss_falls(text_folder):
    c = load_corpus(text_folder, train_bytes=20_000, held_out_bytes=3_000)
    s = Settings(train_len=16, steps=40, batch=8, lr=3e-3, d_model=32, n_heads=4)
    cfg = ModelConfig(scheme="rope", d_model=32, n_heads=4, max_len=16)
    a, b = train(cfg, c, s, seed=3), train(cfg, c, s, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    ids, targets = evaluation_windows(c.held_out, 16, 512)
    untrained = TinyLM(cfg).eval()
    with torch.no_grad():
        assert a.token_losses(ids, targets).mean() < untrained.token_losses(ids, targets).mean()


def test_metrics():
    assert perplexity_from_losses(torch.tensor([math.log(4.0)] * 3)) == pytest.approx(4.0)
    buckets = position_buckets(torch.arange(40.0), train_len=5)
    assert buckets == {"0-5": 2.0, "5-10": 7.0, "10-20": 14.5, "20-40": 29.5}
    assert list(position_buckets(torch.zeros(12), 5)) == ["0-5", "5-10"]


def test_study_results_keys_and_cli(text_folder, tmp_path):
    s = tiny_settings(
        seeds=[0, 1],
        schemes=["learned", "rope", "alibi"],
    )
    r = run_study(s, str(text_folder), show_progress=False)
    assert r["train_len"] == 8 and r["eval_lens"] == [8, 16, 32, 64]
    assert set(r["ppl"]) == {"learned", "learned_clamped", "rope", "rope_pi", "rope_ntk", "alibi"}
    assert r["ppl"]["learned"]["8"] is not None and r["ppl"]["learned"]["64"] is None
    assert all(v is not None for v in r["ppl"]["learned_clamped"].values())
    assert r["ppl"]["rope_pi"]["8"] == r["ppl"]["rope"]["8"]  # factor 1 at the training length
    assert len(r["per_seed"]["alibi"]["64"]) == 2 and r["corpus"]["sha256"]
    assert set(r["position_loss"]["alibi"]["64"]) == {"0-8", "8-16", "16-32", "32-64"}
    out = tmp_path / "out"
    assert (
        main(
            [
                "--corpus",
                str(text_folder),
                "--out",
                str(out),
                "--name",
                "t",
                "--steps",
                "3",
                "--schemes",
                "nope",
                "--seeds",
                "0",
                "--quick",
            ]
        )
        == 0
    )
    saved = json.loads((out / "extrapolation_t.json").read_text())
    assert saved["ppl"]["nope"] and (out / "extrapolation_t.png").exists()
