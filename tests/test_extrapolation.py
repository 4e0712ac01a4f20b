"""The offline corpus, the tiny LM and the extrapolation study: mechanics, not the ranking."""

import dataclasses
import json
import math
import statistics

import pytest
import torch
from conftest import tiny_settings

from posenc.experiments.context_use import short_context_loss, short_context_windows
from posenc.experiments.data import Corpus, evaluation_windows, load_corpus, training_batches
from posenc.experiments.extrapolation import (
    Settings,
    context_verdict,
    main,
    merge_results,
    perplexity_from_losses,
    plot_context_use,
    position_buckets,
    position_losses,
    run_study,
    train,
)
from posenc.experiments.model import SCHEMES, ModelConfig, TinyLM
from posenc.experiments.spread import TIE, lower, mean_pm, spread
from posenc.experiments.styles import STYLES


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
    # head_dim 32 / 4 = 8, base 10: wavelengths 2π·10^(i/4) ≈ 6.3, 11.2, 19.9, 35.3 vs L = 8
    assert r["rope_regime"] == {
        "base": 10.0,
        "head_dim": 8,
        "train_len": 8,
        "slow_pairs": 3,
        "pairs": 4,
        "llama2_slow_pairs": 18,
        "llama2_pairs": 64,
    }
    for row, by_len in r["per_seed"].items():
        for E, values in by_len.items():
            s = r["ppl_spread"][row][E]
            if None in values:
                assert s is None and r["ppl"][row][E] is None
                continue
            assert s["sd"] == pytest.approx(statistics.stdev(values))
            assert (s["min"], s["max"]) == (min(values), max(values))
            assert r["ppl"][row][E] == pytest.approx(statistics.mean(values))
            for b, loss in r["position_loss"][row][E].items():
                lo_hi = r["position_loss_spread"][row][E][b]
                assert lo_hi["min"] <= loss <= lo_hi["max"]
    c = r["context_use"]
    assert (c["positions"], c["long_window"], c["short_window"]) == ([32, 64], 64, 8)
    assert set(c["rows"]) == {"learned_clamped", "rope", "rope_pi", "rope_ntk", "alibi"}
    for row, u in c["rows"].items():  # the 8L side is the 32-64 bucket of the 64-byte windows
        assert u["window_8L"]["mean"] == pytest.approx(r["position_loss"][row]["64"]["32-64"])
        gains = [
            b - a
            for a, b in zip(u["window_8L"]["per_seed"], u["window_L"]["per_seed"], strict=True)
        ]
        assert u["gain"]["per_seed"] == pytest.approx(gains)
    assert c["rows"]["rope_pi"]["window_L"] == c["rows"]["rope"]["window_L"]  # the same model
    fig = plot_context_use(r)
    colours = {ln.get_label(): ln.get_color() for ln in fig.axes[0].get_lines()}
    assert (
        colours["alibi"] == STYLES["alibi"]["color"] and colours["rope"] == STYLES["rope"]["color"]
    )
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


def test_spread_on_hand_made_numbers():
    s = spread([1.0, 2.0, 3.0, 4.0])  # mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25
    assert s["sd"] == pytest.approx(math.sqrt(5.0 / 3.0)) and (s["min"], s["max"]) == (1.0, 4.0)
    assert spread([7.0]) == {"sd": None, "min": 7.0, "max": 7.0}
    with pytest.raises(ValueError, match="values"):
        spread([])
    assert mean_pm(6.3234, {"sd": 0.0121}) == "6.323 ± 0.012"
    assert mean_pm(6.3234, {"sd": None}) == "6.323"


def test_a_verdict_needs_ranges_that_do_not_overlap():
    a, b = spread([1.0, 1.2, 1.1]), spread([1.3, 1.5])
    assert lower("a", a, "b", b) == "a" and lower("b", b, "a", a) == "a"
    assert lower("a", a, "c", spread([1.15, 1.4])) == TIE  # 1.15 lies inside a's range


class CopyBack(torch.nn.Module):
    """Predicts the next byte as the byte ``period`` places before it, when its window holds
    that byte (logit 30, else uniform): the answer to "does it use context?" is known."""

    def __init__(self, period: int):
        super().__init__()
        self.period = period

    def token_losses(self, ids, targets, positions=None):
        b, n = ids.shape
        logits = torch.zeros(b, n, 256)
        t = torch.arange(self.period - 1, n)  # inputs whose target has its copy in the window
        logits[:, t] = 30 * torch.nn.functional.one_hot(ids[:, t + 1 - self.period], 256).float()
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), reduction="none"
        ).view(b, n)


def test_short_context_windows_end_at_each_token():
    data = torch.arange(40, dtype=torch.uint8)  # byte i is i, so windows are easy to read
    ids, targets = short_context_windows(data, seq_len=8, total_tokens=16, context=2)
    # second halves of the windows [0, 8) and [8, 16): tokens 4 … 7 and 12 … 15
    assert ids.tolist()[:2] == [[3, 4], [4, 5]] and ids.tolist()[-1] == [14, 15]
    assert targets.tolist() == [5, 6, 7, 8, 13, 14, 15, 16]
    with pytest.raises(ValueError, match="context"):
        short_context_windows(data, seq_len=8, total_tokens=16, context=5)


@pytest.mark.parametrize(("period", "short_sees_it"), [(8, True), (9, False)])
def test_context_use_on_a_model_whose_answer_is_known(period, short_sees_it):
    g = torch.Generator().manual_seed(0)
    held = torch.randint(0, 256, (period,), generator=g, dtype=torch.uint8).repeat(40)
    L, E = 8, 64  # the copy lies period bytes back: inside the last L = 8 bytes iff period ≤ 8
    short = short_context_loss(CopyBack(period), held, E, 256, context=L)
    long = position_losses(CopyBack(period), Corpus(held, held, "", ""), E, 256)[E // 2 :]
    assert long.mean().item() < 1e-6  # 32 … 63 bytes of context always hold the copy
    assert short == pytest.approx(0.0 if short_sees_it else math.log(256), abs=1e-6)


def test_context_verdict_needs_every_seed():
    assert context_verdict(spread([0.01, 0.02, 0.03])) == "uses it"
    assert context_verdict(spread([-0.01, 0.0, -0.02])) == "does not use it"
    assert context_verdict(spread([-0.01, 0.02])).startswith("tie")


def _part(seed, ppl, bucket, long, short, steps=5):
    s = tiny_settings(seeds=[seed], schemes=["alibi"], steps=steps)
    return {
        "settings": dataclasses.asdict(s),
        "corpus": {"sha256": "x"},
        "rope_regime": {},
        "per_seed": {"alibi": {"8": [ppl]}},
        "per_seed_position_loss": {"alibi": {"8": [{"0-8": bucket}]}},
        "per_seed_context": {"alibi": [{"window_8L": long, "window_L": short}]},
        "torch_version": "t",
        "python_version": "p",
        "machine": "m",
        "wall_time_s": 10.0 + seed,
    }


def test_runs_of_one_seed_each_merge_into_one_study():
    m = merge_results([_part(3, 2.0, 1.0, 1.5, 1.4), _part(5, 3.0, 2.0, 1.2, 1.4)])
    assert m["settings"]["seeds"] == [3, 5] and m["wall_time_s"] == 15.0
    assert m["ppl"]["alibi"]["8"] == 2.5 and m["position_loss"]["alibi"]["8"]["0-8"] == 1.5
    assert m["ppl_spread"]["alibi"]["8"]["sd"] == pytest.approx(math.sqrt(0.5))
    gain = m["context_use"]["rows"]["alibi"]["gain"]  # 1.4 − 1.5 and 1.4 − 1.2
    assert gain["per_seed"] == pytest.approx([-0.1, 0.2]) and gain["min"] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="every setting but the seeds"):
        merge_results([_part(0, 2.0, 1.0, 1.5, 1.4), _part(1, 2.0, 1.0, 1.5, 1.4, steps=6)])
