"""RoPE scaling methods: reduce to plain RoPE at factor 1, and match their published forms."""

import math

import pytest
import torch

from posenc.rope import apply_rope, rope_frequencies
from posenc.rope_scaling import (
    ntk_scaled_base,
    rope_scaled_frequencies,
    yarn_attention_factor,
    yarn_correction_range,
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
