"""The benchmark's correctness in quick mode: formulations agree, memory is measured, the CLI
writes its files; never its timings (speed is a benchmark, not a test)."""

import json

import torch

from posenc.experiments.bench import cpu_peak_extra_bytes, main, time_interleaved
from posenc.experiments.bench_kernels import (
    meta_apply_rotary_emb,
    rope_complex_into,
    rope_half_into,
    rope_variants,
)
from posenc.experiments.costs import attention_flops, rope_bytes_moved
from posenc.rope import apply_rope, apply_rope_complex, rope_cos_sin


def test_rope_forms_agree():
    torch.manual_seed(0)
    x, pos = torch.randn(2, 3, 50, 16), torch.arange(50)
    cos, sin = rope_cos_sin(pos, 16)
    rotation = torch.complex(cos, sin)
    half, interleaved = apply_rope(x, pos), apply_rope(x, pos, layout="interleaved")
    out = torch.full_like(x, float("nan"))
    torch.testing.assert_close(rope_half_into(x, cos, sin, out), half)
    torch.testing.assert_close(rope_complex_into(x, rotation, out), interleaved)
    torch.testing.assert_close(meta_apply_rotary_emb(x, rotation), interleaved)
    torch.testing.assert_close(apply_rope_complex(x, pos), interleaved, atol=1e-5, rtol=1e-5)


def test_every_timed_rope_variant_computes_rope():
    """The peers run from their packages: each must return the rotation of its layout."""
    torch.manual_seed(0)
    variants = rope_variants((1, 2, 40, 16), torch.device("cpu"), torch.float32, use_compile=False)
    torch.manual_seed(0)  # rope_variants draws x first: the same x
    x, pos = torch.randn(1, 2, 40, 16), torch.arange(40)
    for name, v in variants.items():
        expected = x if v["layout"] == "limit" else apply_rope(x, pos, layout=v["layout"])
        torch.testing.assert_close(v["fn"](), expected, atol=1e-5, rtol=1e-5, msg=name)


def test_interleaved_timing_times_every_variant_in_turn():
    calls = []
    fns = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    timed = time_interleaved(fns, torch.device("cpu"), repeats=3)
    assert calls == ["a", "b"] * 4  # one first call each, then A, B, A, B, A, B
    assert timed["a"]["repeats"] == 3 and timed["b"]["median_ms"] >= 0


def test_cpu_peak_counts_what_one_call_allocates():
    hold = []
    grown = cpu_peak_extra_bytes(lambda: hold.append(torch.ones(64, 2**20 // 4)))  # 64 MiB
    assert 60 * 2**20 < grown < 80 * 2**20


def test_counts():
    assert rope_bytes_moved(1, 1, 1, 2, torch.float32) == 2 * 2 * 4 + 2 * 1 * 1 * 4
    assert rope_bytes_moved(2, 3, 4, 8, torch.bfloat16) == 2 * (2 * 3 * 4 * 8) * 2 + 2 * 4 * 4 * 4
    assert attention_flops(1, 1, 3, 5, 7) == 2 * (2 * 3 * 5 * 7)


def test_quick_run_structure_and_cli(tmp_path, capsys):
    args = ["--device", "cpu", "--quick", "--no-memory", "--no-compile", "--out", str(tmp_path)]
    assert main(args) == 0
    assert "smoke test" in capsys.readouterr().out
    r = json.loads((tmp_path / "bench_cpu_quick.json").read_text())
    assert r["machine"] and r["torch_version"] == torch.__version__
    assert (tmp_path / "bench_cpu_quick.png").exists()
    assert {row["scheme"] for row in r["part_a"]} == {
        "nope", "learned", "sinusoidal", "t5", "rope", "alibi"}  # fmt: skip
    assert all(row["median_ms"] > 0 and row["iqr_ms"] >= 0 for row in r["part_a"])
    copy = r["part_b"]["rows"]["copy into a fresh tensor"]
    assert copy["fraction_of_copy_alloc"] == 1.0
    assert set(r["summary"]["rope"]) >= {"half", "interleaved"}
    assert r["summary"]["layer_time_vs_nope"]["nope"] == 1.0
    assert r["summary"]["kernel"]["time_vs_sdpa_nope"]["SDPA, no bias"] == 1.0
