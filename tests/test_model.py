"""The tiny LM's RoPE copies: a scaled copy keeps the trained base."""

import pytest
import torch

from posenc.experiments.model import ModelConfig, TinyLM, with_rope_scaling


@pytest.mark.parametrize("base", [10.0, 500.0])
def test_factor_one_scaling_is_the_trained_model(base):
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(d_model=32, n_heads=2, n_layers=1, max_len=16, rope_base=base))
    ids = torch.randint(256, (2, 16))
    plain = model(ids)
    for scaling in ({"rope_type": "linear", "factor": 1.0}, {"rope_type": "default"}):
        torch.testing.assert_close(with_rope_scaling(model, scaling)(ids), plain)


def test_a_different_rope_theta_is_refused():
    model = TinyLM(ModelConfig(d_model=32, n_heads=2, n_layers=1, max_len=16, rope_base=10.0))
    with pytest.raises(ValueError, match="rope_theta"):
        with_rope_scaling(model, {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0})
