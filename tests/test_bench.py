"""The benchmark's correctness in quick mode: formulations agree; never its timings."""

import json

import torch

from posenc.alibi import alibi_bias, alibi_slopes
from posenc.attention import attention_sdpa
from posenc.experiments.bench import (
    alibi_blockwise,
    main,
    rope_rotate_half,
    run_bench,
)
from posenc.experiments.costs import attention_flops, rope_bytes_moved
from posenc.rope import apply_rope, apply_rope_complex, rope_cached, rope_cos_sin


def test_rope_formulations_agree():
    torch.manual_seed(0)
    x, pos = torch.randn(2, 3, 50, 16), torch.arange(50)
    cos, sin = rope_cos_sin(pos, 16)
    ref = apply_rope(x, pos)
    torch.testing.assert_close(rope_cached(x, cos, sin), ref)
    torch.testing.assert_close(rope_rotate_half(x, cos, sin), ref, atol=1e-6, rtol=1e-6)
    x.requires_grad_(True)  # the differentiable branch gives the same values
    torch.testing.assert_close(rope_cached(x, cos, sin).detach(), ref)
    torch.testing.assert_close(
        apply_rope_complex(x.detach(), pos),
        apply_rope(x.detach(), pos, layout="interleaved"),
        atol=1e-5,
        rtol=1e-5,
    )


def test_blockwise_alibi_equals_the_materialised_bias():
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 1, 4, 300, 16).unbind(0)
    full = attention_sdpa(q, k, v, bias=alibi_bias(4, 300), causal=False)
    torch.testing.assert_close(
        alibi_blockwise(q, k, v, alibi_slopes(4), block=64), full, atol=1e-5, rtol=1e-5
    )


def test_counts():
    assert rope_bytes_moved(1, 1, 1, 2, torch.float32) == 2 * 2 * 4 + 2 * 1 * 1 * 4
    assert rope_bytes_moved(2, 3, 4, 8, torch.bfloat16) == 2 * (2 * 3 * 4 * 8) * 2 + 2 * 4 * 4 * 4
    assert attention_flops(1, 1, 3, 5, 7) == 2 * (2 * 3 * 5 * 7)


def test_quick_run_structure_and_cli(tmp_path):
    r = run_bench(
        torch.device("cpu"),
        torch.float32,
        quick=True,
        use_compile=False,
        measure_memory=False,
        show_progress=False,
    )
    schemes = {row["scheme"] for row in r["part_a"]}
    assert schemes == {"nope", "learned", "sinusoidal", "t5", "rope", "alibi"}
    assert all(row["median_ms"] > 0 and row["iqr_ms"] >= 0 for row in r["part_a"])
    assert r["part_b"]["rows"]["copy (speed limit)"]["fraction_of_copy"] == 1.0
    summary = r["summary"]
    for key in (
        "rope_default_vs_fastest_formulation",
        "rope_default_fraction_of_copy",
        "layer_time_vs_nope",
        "alibi_blockwise_time_vs_nope",
    ):
        assert key in summary
    assert summary["layer_time_vs_nope"]["nope"] == 1.0
    assert (
        main(["--device", "cpu", "--quick", "--no-memory", "--no-compile", "--out", str(tmp_path)])
        == 0
    )
    saved = json.loads((tmp_path / "bench_cpu_quick.json").read_text())
    assert saved["machine"] and saved["torch_version"] == torch.__version__
    assert (tmp_path / "bench_cpu_quick.png").exists()
