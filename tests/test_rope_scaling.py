"""RoPE scaling methods: reduce to plain RoPE at factor 1, and match their published forms."""

import math

import pytest
import torch

from posenc.rope import apply_rope, rope_frequencies
from posenc.rope_scaling import (
    dynamic_ntk_base,
    linear_scaled_frequencies,
    ntk_scaled_base,
    rope_scaled_frequencies,
    rotary_embedding,
    rotary_from_config,
    yarn_attention_factor,
    yarn_correction_range,
    yarn_frequencies,
    yarn_ramp,
)

L = 4096
CONFIGS = {
    "linear": {"rope_type": "linear"},
    "ntk": {"rope_type": "ntk"},
    "dynamic": {"rope_type": "dynamic", "original_max_position_embeddings": L},
    "yarn": {"rope_type": "yarn", "original_max_position_embeddings": L},
    "llama3": {
        "rope_type": "llama3",
        "low_freq_factor": 1,
        "high_freq_factor": 4,
        "original_max_position_embeddings": L,
    },
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_factor_one_is_plain_rope(name):
    """Dynamic NTK follows Hugging Face: (f·s/L − (f − 1)) still grows with s at f = 1, so it
    is plain only up to the original length."""
    seq_len = L if name == "dynamic" else 2 * L
    theta, attention = rope_scaled_frequencies(
        128, 10000.0, CONFIGS[name] | {"factor": 1.0}, seq_len=seq_len
    )
    torch.testing.assert_close(theta, rope_frequencies(128))
    assert attention == 1.0


def test_linear_at_p_equals_plain_at_p_over_factor():
    x = torch.randn(3, 64)
    theta, _ = rope_scaled_frequencies(64, 10000.0, {"rope_type": "linear", "factor": 4.0})
    scaled = apply_rope(x, torch.tensor([40, 400, 4000]), frequencies=theta)
    # plain RoPE at fractional positions p / 4, written out here
    angles = torch.tensor([10.0, 100.0, 1000.0])[:, None] * rope_frequencies(64)
    cos, sin = torch.cat([angles.cos()] * 2, -1), torch.cat([angles.sin()] * 2, -1)
    rotated = torch.cat([-x[:, 32:], x[:, :32]], -1)
    torch.testing.assert_close(scaled, x * cos + rotated * sin, atol=1e-4, rtol=1e-4)


def test_ntk_keeps_the_fastest_pair_and_divides_the_slowest_by_the_factor():
    theta, _ = rope_scaled_frequencies(128, 10000.0, {"rope_type": "ntk", "factor": 8.0})
    plain = rope_frequencies(128)
    assert theta[0] == plain[0]
    assert math.isclose((plain[-1] / theta[-1]).item(), 8.0, rel_tol=1e-4)
    assert ntk_scaled_base(10000.0, 8.0, 128) == pytest.approx(10000 * 8 ** (128 / 126))


def test_dynamic_is_plain_up_to_the_original_length_then_grows_its_base():
    cfg = CONFIGS["dynamic"] | {"factor": 4.0}
    plain = rope_frequencies(64)
    torch.testing.assert_close(rope_scaled_frequencies(64, 10000.0, cfg, seq_len=L)[0], plain)
    longer = rope_scaled_frequencies(64, 10000.0, cfg, seq_len=2 * L)[0]
    expected_base = 10000.0 * (4.0 * 2 - 3) ** (64 / 62)
    torch.testing.assert_close(longer, rope_frequencies(64, expected_base))


def test_yarn_reference_setting():
    """dim 128, base 10000, L 4096, factor 16: the ramp spans pairs 20 … 46 (YaRN paper's
    beta_fast = 32, beta_slow = 1) and the attention factor is 0.1 ln 16 + 1."""
    assert yarn_correction_range(128, 10000.0, L) == (20, 46)
    ramp = yarn_ramp(128, 10000.0, L)
    assert ramp[:21].eq(0).all() and ramp[46:].eq(1).all()
    assert (ramp[1:] >= ramp[:-1]).all()
    theta, attention = rope_scaled_frequencies(128, 10000.0, CONFIGS["yarn"] | {"factor": 16.0})
    plain = rope_frequencies(128)
    torch.testing.assert_close(theta[:21], plain[:21])  # fast pairs extrapolate
    torch.testing.assert_close(theta[46:], plain[46:] / 16)  # slow pairs interpolate
    assert attention == pytest.approx(0.1 * math.log(16) + 1) == yarn_attention_factor(16)
    override = CONFIGS["yarn"] | {"factor": 16.0, "attention_factor": 1.0}
    assert rope_scaled_frequencies(128, 10000.0, override)[1] == 1.0


def test_llama3_bands_are_continuous():
    cfg = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
    }
    plain = rope_frequencies(128, 500000.0)
    theta, _ = rope_scaled_frequencies(128, 500000.0, cfg)
    wavelength = 2 * math.pi / plain
    assert torch.equal(theta[wavelength < 8192 / 4], plain[wavelength < 8192 / 4])
    torch.testing.assert_close(theta[wavelength > 8192], plain[wavelength > 8192] / 8)
    # Continuity: with many pairs (dense wavelengths) the stretch plain/theta goes from 1 to 8
    # through the middle band without a jump at either edge.
    dense_plain = rope_frequencies(4096, 500000.0)
    dense_theta, _ = rope_scaled_frequencies(4096, 500000.0, cfg)
    stretch = (dense_plain / dense_theta).double()
    assert stretch.min() == pytest.approx(1.0) and stretch.max() == pytest.approx(8.0)
    assert (stretch[1:] - stretch[:-1]).abs().max() < 0.25  # a missing band would jump by ~7


@pytest.mark.parametrize(
    "scaling, word",
    [
        ({"rope_type": "magic", "factor": 2}, "rope_type"),
        ({"rope_type": "linear"}, "factor"),
        ({"rope_type": "linear", "factor": 0.5}, "factor"),
        ({"rope_type": "yarn", "factor": 2}, "original_max_position_embeddings"),
        (
            {"rope_type": "llama3", "factor": 2, "original_max_position_embeddings": 8},
            "low_freq_factor",
        ),
    ],
)
def test_bad_configs_name_the_key(scaling, word):
    with pytest.raises(ValueError, match=word):
        rope_scaled_frequencies(64, 10000.0, scaling)


# --- Hugging Face's dicts, read as they are ------------------------------------------------


def plain(dim, base):
    return 1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def test_old_and_new_style_dicts_give_the_same_frequencies():
    old = rope_scaled_frequencies(64, 5e5, {"type": "linear", "factor": 4.0})
    new = rope_scaled_frequencies(
        64, None, {"rope_type": "linear", "factor": 4.0, "rope_theta": 5e5}
    )
    torch.testing.assert_close(old[0], new[0])
    torch.testing.assert_close(new[0], (plain(64, 5e5) / 4).float())
    default = {"rope_type": "default", "rope_theta": 5e5}
    torch.testing.assert_close(
        rope_scaled_frequencies(64, None, default)[0], plain(64, 5e5).float()
    )
    torch.testing.assert_close(rope_scaled_frequencies(64)[0], plain(64, 1e4).float())


def test_dynamic_reads_max_position_embeddings_as_hugging_face_does():
    """HF: base' = base·(f·s/L − (f − 1))^(d/(d−2)) with L = max_position_embeddings and
    s = max(seq_len, L); original_max_position_embeddings is the course's fallback only."""
    cfg = {"rope_type": "dynamic", "factor": 2.0, "original_max_position_embeddings": 64}
    theta, _ = rope_scaled_frequencies(32, 1e4, cfg, seq_len=1000, max_position_embeddings=256)
    expected_base = 1e4 * (2.0 * 1000 / 256 - 1.0) ** (32 / 30)
    torch.testing.assert_close(theta, plain(32, expected_base).float())
    short, _ = rope_scaled_frequencies(32, 1e4, cfg, seq_len=200, max_position_embeddings=256)
    torch.testing.assert_close(short, plain(32, 1e4).float())  # s ≤ L: plain RoPE
    with pytest.raises(ValueError, match="max_position_embeddings"):
        rope_scaled_frequencies(32, 1e4, {"rope_type": "dynamic", "factor": 2.0})


def test_rotary_embedding_dynamic_grows_with_the_sequence():
    rope = rotary_embedding(16, {"rope_type": "dynamic", "factor": 4.0}, max_position_embeddings=8)
    q = torch.randn(1, 1, 20, 16)
    rq, _ = rope.rotate(q, q, torch.arange(20))
    base = 1e4 * (4.0 * 20 / 8 - 3.0) ** (16 / 14)
    expected = apply_rope(q, torch.arange(20), frequencies=plain(16, base))
    torch.testing.assert_close(rq, expected)
    rq8, _ = rope.rotate(q[..., :8, :], q[..., :8, :], torch.arange(8))
    torch.testing.assert_close(rq8, apply_rope(q[..., :8, :], torch.arange(8)))


def test_yarn_deepseek_mscale_truncate_and_default_betas():
    base_cfg = {"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 4096}
    ds = base_cfg | {"mscale": 1.0, "mscale_all_dim": 0.707, "beta_fast": None, "beta_slow": None}
    theta, attention = rope_scaled_frequencies(64, 1e4, ds)
    ln = math.log(40.0)
    assert attention == pytest.approx((0.1 * 1.0 * ln + 1) / (0.1 * 0.707 * ln + 1))
    torch.testing.assert_close(theta, rope_scaled_frequencies(64, 1e4, base_cfg)[0])
    only_one = base_cfg | {"mscale": 1.0}  # HF needs both to use them
    assert rope_scaled_frequencies(64, 1e4, only_one)[1] == pytest.approx(0.1 * ln + 1)
    # truncate=False: the ramp ends are the exact (fractional) pair indices
    low = 64 * math.log(4096 / (32 * 2 * math.pi)) / (2 * math.log(1e4))
    high = 64 * math.log(4096 / (1 * 2 * math.pi)) / (2 * math.log(1e4))
    ramp = ((torch.arange(32, dtype=torch.float64) - low) / (high - low)).clamp(0, 1)
    p = plain(64, 1e4)
    untruncated, _ = rope_scaled_frequencies(64, 1e4, base_cfg | {"truncate": False})
    torch.testing.assert_close(untruncated, (p * (1 - ramp) + p / 40 * ramp).float())
    with_ratio = base_cfg | {"factor": None}  # HF: factor = max_position_embeddings / L
    ratio, _ = rope_scaled_frequencies(64, 1e4, with_ratio, max_position_embeddings=4096 * 40)
    torch.testing.assert_close(ratio, theta)


def test_partial_rotary_factor_and_config_objects():
    rope = rotary_embedding(32, {"rope_type": "default", "partial_rotary_factor": 0.25})
    assert rope.rotary_dim == 8
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "max_position_embeddings": 128,
        "rope_theta": 500.0,
        "rope_scaling": {"type": "yarn", "factor": 4.0},
    }
    old = rotary_from_config(config)
    new_params = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 500.0}
    new = rotary_from_config(
        {k: v for k, v in config.items() if "rope" not in k} | {"rope_parameters": new_params}
    )
    for rope in (old, new):  # HF: original_max_position_embeddings defaults to the model's
        expected, attention = yarn_frequencies(16, 500.0, 4.0, 128, dtype=torch.float64)
        torch.testing.assert_close(rope.inv_freq, expected)
        assert rope.attention_factor == attention and rope.layout == "half"
    gptj = {"model_type": "gptj", "n_embd": 64, "n_head": 2, "rotary_dim": 8, "n_positions": 64}
    rope = rotary_from_config(gptj)
    assert (rope.layout, rope.rotary_dim, rope.head_dim) == ("interleaved", 8, 32)


@pytest.mark.parametrize(
    "scaling, kwargs, error, word",
    [
        ({"rope_type": "longrope", "factor": 2.0}, {}, ValueError, "rope_type"),
        ({"rope_type": "linear", "factor": 2.0, "factr": 3}, {}, ValueError, "factr"),
        ({"type": "linear", "rope_type": "yarn", "factor": 2.0}, {}, ValueError, "disagree"),
        ({"rope_type": "linear", "factor": 0.0}, {}, ValueError, "factor"),
        ({"rope_type": "linear", "factor": -2.0}, {}, ValueError, "factor"),
        ({"rope_type": "linear", "factor": "2"}, {}, TypeError, "factor"),
        ({"rope_type": "linear", "factor": math.nan}, {}, ValueError, "factor"),
        (
            {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0},
            {"base": 1e4},
            ValueError,
            "rope_theta",
        ),
        (
            {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 2.5},
            {},
            ValueError,
            "original_max_position_embeddings",
        ),
        (
            {
                "rope_type": "yarn",
                "factor": 2.0,
                "original_max_position_embeddings": 64,
                "truncate": "no",
            },
            {},
            TypeError,
            "truncate",
        ),
        (
            {
                "rope_type": "yarn",
                "factor": 2.0,
                "original_max_position_embeddings": 64,
                "beta_fast": 0.5,
            },
            {},
            ValueError,
            "beta_fast",
        ),
        (
            {
                "rope_type": "llama3",
                "factor": 8.0,
                "low_freq_factor": 4.0,
                "high_freq_factor": 1.0,
                "original_max_position_embeddings": 64,
            },
            {},
            ValueError,
            "high_freq_factor",
        ),
        (
            {"rope_type": "dynamic", "factor": 2.0},
            {"max_position_embeddings": 0},
            ValueError,
            "max_position_embeddings",
        ),
        ([("rope_type", "linear")], {}, TypeError, "dict"),
    ],
)
def test_bad_configs_raise_a_clear_error(scaling, kwargs, error, word):
    with pytest.raises(error, match=word):
        rope_scaled_frequencies(64, kwargs.pop("base", None), scaling, **kwargs)


def test_public_functions_check_their_arguments():
    with pytest.raises(ValueError, match="factor"):
        linear_scaled_frequencies(64, 1e4, 0.0)
    with pytest.raises(ValueError, match="seq_len"):
        dynamic_ntk_base(1e4, 2.0, 64, 2.5, 16)
    with pytest.raises(ValueError, match="partial_rotary_factor"):
        rotary_embedding(32, {"partial_rotary_factor": 1.5})
    with pytest.raises(ValueError, match="head_dim"):
        rotary_from_config({"hidden_size": 64})


def test_rope_never_imports_rope_scaling():
    """The dependency runs one way: rope_scaling builds on rope (issue: no import cycle)."""
    import ast
    from pathlib import Path

    import posenc.rope

    tree = ast.parse(Path(posenc.rope.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "posenc.rope_scaling" not in imported and "posenc.sinusoidal" in imported


def test_pair_treatment_counts_by_hand():
    """dim 8, base 10, L 32: θ_i = 10^(−i/4), wavelengths 2π·10^(i/4) = 6.28, 11.2, 19.9, 35.3.
    Llama 3 (low 1, high 4) keeps λ < 32/4 = 8 (pair 0), interpolates λ > 32 (pair 3) and blends
    pairs 1, 2; PI interpolates all four; NTK keeps pair 0 and slows pair 3 by exactly f."""
    from posenc.rope_scaling import pair_treatment

    llama3 = {
        "rope_type": "llama3",
        "factor": 4.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32,
    }
    assert pair_treatment(8, llama3, 4.0, 10.0) == {"kept": 1, "blended": 2, "interpolated": 1}
    linear = {"rope_type": "linear", "factor": 4.0}
    assert pair_treatment(8, linear, 4.0, 10.0) == {"kept": 0, "blended": 0, "interpolated": 4}
    ntk = {"rope_type": "ntk", "factor": 4.0}
    assert pair_treatment(8, ntk, 4.0, 10.0) == {"kept": 1, "blended": 2, "interpolated": 1}
    assert pair_treatment(8, None, 4.0, 10.0) == {"kept": 4, "blended": 0, "interpolated": 0}


def test_pair_treatment_reads_dynamic_at_its_length():
    """Dynamic NTK, factor 2, L 32, dim 8, base 10: at s = 32 nothing changes; at s = 64 the
    base grows by (2·64/32 − 1)^(8/6) = 3^(4/3), so pair 3 slows by 3 (≥ the stretch 2) and
    pair 2 by 3^(2/3) ≈ 2.08 (also ≥ 2), pair 1 by 3^(1/3) ≈ 1.44 (blended)."""
    from posenc.rope_scaling import pair_treatment

    dynamic = {"rope_type": "dynamic", "factor": 2.0}
    at = {"max_position_embeddings": 32}
    kept = pair_treatment(8, dynamic, 2.0, 10.0, seq_len=32, **at)
    assert kept == {"kept": 4, "blended": 0, "interpolated": 0}
    grown = pair_treatment(8, dynamic, 2.0, 10.0, seq_len=64, **at)
    assert grown == {"kept": 1, "blended": 1, "interpolated": 2}


def test_classify_pairs_rejects_a_faster_pair():
    from posenc.rope_scaling import classify_pairs

    theta = torch.tensor([1.0, 0.5])
    with pytest.raises(ValueError, match="faster"):
        classify_pairs(theta, theta * 2, 2.0)


def test_critical_dim_matches_liu_et_al_and_the_slow_pairs():
    """Llama 2: (128/2)·log_10000(4096/2π) = 64 · 0.7036 = 45.03 → 2 · 46 = 92 (Liu et al.
    report 92); the tiny LM: 16 · log_10(32/2π) = 11.31 → 24. The rest are the slow pairs."""
    from posenc.rope import slow_pair_count
    from posenc.rope_scaling import critical_dim

    assert critical_dim(128, 10000.0, 4096) == 92
    assert 128 // 2 - slow_pair_count(4096, 128, 10000.0) == 92 // 2
    assert critical_dim(32, 10.0, 32) == 24
    assert critical_dim(32, 10000.0, 4) == 0  # L < 2π: no pair completes a turn
    assert critical_dim(16, 10.0, 10**6) == 16  # every pair does
    with pytest.raises(ValueError, match="base"):
        critical_dim(32, 1.0, 32)
