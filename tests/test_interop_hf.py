"""posenc's RoPE swapped into tiny random Hugging Face models (built from config objects, no
downloads): Llama with every rope type posenc implements, GPT-NeoX and Phi (partial rotary),
GPT-J (interleaved). The swapped model's cos/sin come from posenc's RotaryEmbedding (built
from the HF config by ``rotary_from_config``) and its q/k rotation from posenc's kernels; its
logits, KV-cache decoding and cached keys must equal the original model's within float32
noise. Needs the ``compare`` extra (installed by ``pip install -e '.[dev]'``)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

transformers = pytest.importorskip(
    "transformers",
    reason=(
        "TRANSFORMERS IS NOT INSTALLED: the Hugging Face RoPE interop tests did NOT run "
        "(pip install -e '.[dev]' installs it)"
    ),
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402

from posenc.rope import RotaryEmbedding, rope_cached, rope_cached_interleaved, rope_cos_sin  # noqa: E402
from posenc.rope_scaling import rotary_from_config  # noqa: E402

SEQ, PREFILL, MAX_POS = 24, 20, 16  # run past max_position_embeddings: dynamic NTK kicks in
TOL = dict(atol=2e-5, rtol=1e-4)  # float32 noise on logits of size ~0.1


class PosencRotary(nn.Module):
    """Stands in for a model's rotary module: cos and sin (batch, seq, r/2) from posenc."""

    def __init__(self, rope: RotaryEmbedding, sin_first: bool = False):
        super().__init__()
        self.rope, self.sin_first = rope, sin_first

    def forward(self, x, position_ids):
        r = self.rope
        cos, sin = rope_cos_sin(
            position_ids,
            r.rotary_dim,
            r.base,
            frequencies=r.frequencies(position_ids),
            attention_factor=r.attention_factor,
        )
        return (sin, cos) if self.sin_first else (cos, sin)


def half_apply(calls):
    """posenc's rope_cached in place of HF's apply_rotary_pos_emb(q, k, cos, sin)."""

    def apply(q, k, cos, sin, unsqueeze_dim=1):
        calls.append(q.shape)
        cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)  # head axis
        r = 2 * cos.shape[-1]

        def one(x):
            return torch.cat([rope_cached(x[..., :r], cos, sin), x[..., r:]], dim=-1)

        return one(q), one(k)

    return apply


def interleaved_apply(calls):
    """posenc's interleaved kernel in place of GPT-J's apply_rotary_pos_emb(x, sin, cos);
    x: (batch, seq, heads, r), sin/cos: (batch, seq, r/2)."""

    def apply(x, sin, cos):
        calls.append(x.shape)
        return rope_cached_interleaved(x, cos[:, :, None, :], sin[:, :, None, :])

    return apply


def run(model, ids):
    """KV-cache decoding from PREFILL on, then the full sequence: (logits, steps, cache).

    Decoding first: HF's dynamic NTK keeps the frequencies of the longest input seen so far,
    posenc computes them for each input's own length; on a growing sequence they agree."""
    with torch.no_grad():
        out = model(ids[:, :PREFILL], use_cache=True)
        cache, steps = out.past_key_values, [out.logits[:, -1]]
        for t in range(PREFILL, ids.shape[1]):
            out = model(ids[:, t : t + 1], cache=cache, use_cache=True)
            cache = out.past_key_values
            steps.append(out.logits[:, -1])
        full = model(ids).logits
    return full, torch.stack(steps, 1), cache


def cached_keys(cache):
    return [layer.keys for layer in cache.layers]


def compare_swapped(model, module, rotary_attr, apply_name, apply, rope, monkeypatch, **kw):
    """HF's outputs, then the same weights with posenc's rotary and rotation."""
    torch.manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (2, SEQ))
    hf_full, hf_steps, hf_cache = run(model, ids)
    swapped = copy.deepcopy(model)
    owner = swapped.get_submodule(rotary_attr.rpartition(".")[0])
    setattr(owner, rotary_attr.rpartition(".")[2], PosencRotary(rope, **kw))
    calls = []
    with monkeypatch.context() as m:
        m.setattr(module, apply_name, apply(calls))
        ours_full, ours_steps, ours_cache = run(swapped, ids)
    assert calls, "the patched rotation was never called: the swap did not take"
    torch.testing.assert_close(ours_full, hf_full, **TOL)
    torch.testing.assert_close(ours_steps, hf_steps, **TOL)
    for ours, theirs in zip(cached_keys(ours_cache), cached_keys(hf_cache), strict=True):
        torch.testing.assert_close(ours, theirs, **TOL)
    return ours_full, ours_steps


def compare_rotate(rope, hf_rotary, hf_apply, head_dim):
    """RotaryEmbedding.rotate against the model's rotary module and apply function."""
    torch.manual_seed(2)
    q, k = torch.randn(2, 2, 4, SEQ, head_dim).unbind(0)  # (batch, heads, seq, head_dim)
    positions = torch.arange(SEQ)
    with torch.no_grad():
        cos, sin = hf_rotary(q, positions[None].expand(2, -1))
        theirs = hf_apply(q, k, cos, sin)
    for ours, hf in zip(rope.rotate(q, k, positions), theirs, strict=True):
        torch.testing.assert_close(ours, hf, atol=1e-5, rtol=1e-5)


def tiny(cls, config):
    torch.manual_seed(0)
    return cls._from_config(config, attn_implementation="eager").eval()


LLAMA = dict(
    vocab_size=97,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=MAX_POS,
)
ROPE = {  # old-style configs: rope_theta + rope_scaling, HF's own key names
    "default": {"rope_theta": 500.0},
    "linear": {"rope_theta": 500.0, "rope_scaling": {"type": "linear", "factor": 4.0}},
    "dynamic": {"rope_theta": 500.0, "rope_scaling": {"rope_type": "dynamic", "factor": 2.0}},
    "yarn": {
        "rope_theta": 500.0,
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8},
    },
    "yarn_deepseek": {
        "rope_theta": 500.0,
        "rope_scaling": {
            "type": "yarn",
            "factor": 40.0,
            "original_max_position_embeddings": 8,
            "mscale": 1.0,
            "mscale_all_dim": 0.8,
            "beta_fast": None,
            "beta_slow": 2,
            "truncate": False,
        },
    },
    "llama3": {
        "rope_theta": 500.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8,
        },
    },
}


@pytest.mark.parametrize("name", list(ROPE))
def test_llama_every_rope_type(name, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.models.llama import modeling_llama

    config = LlamaConfig(**LLAMA, **copy.deepcopy(ROPE[name]))
    rope = rotary_from_config(LLAMA | copy.deepcopy(ROPE[name]))  # the config.json dict
    # The same from HF's config object (new style: rope_parameters, transformers 5).
    assert torch.equal(
        rotary_from_config(config).frequencies(torch.arange(SEQ)),
        rope.frequencies(torch.arange(SEQ)),
    )
    rope_type = config.rope_parameters["rope_type"]
    if rope_type != "default":  # HF's frequency functions, directly
        theirs, attention = ROPE_INIT_FUNCTIONS[rope_type](config, None, seq_len=SEQ)
        ours = rope.frequencies(torch.arange(SEQ))
        torch.testing.assert_close(ours.float(), theirs, atol=0, rtol=2e-6)
        assert rope.attention_factor == pytest.approx(attention, rel=1e-12)
    model = tiny(LlamaForCausalLM, config)
    full, steps = compare_swapped(
        model,
        modeling_llama,
        "model.rotary_emb",
        "apply_rotary_pos_emb",
        half_apply,
        rope,
        monkeypatch,
    )
    if name != "dynamic":  # dynamic NTK rotates cached keys at the length they were seen
        torch.testing.assert_close(steps[:, -1], full[:, -1], **TOL)
    compare_rotate(rope, model.model.rotary_emb, modeling_llama.apply_rotary_pos_emb, 16)


def test_gpt_neox_partial_rotary(monkeypatch):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    from transformers.models.gpt_neox import modeling_gpt_neox

    config = GPTNeoXConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        partial_rotary_factor=0.25,
    )
    rope = rotary_from_config(config)
    assert (rope.head_dim, rope.rotary_dim, rope.layout) == (16, 4, "half")
    model = tiny(GPTNeoXForCausalLM, config)
    compare_rotate(rope, model.gpt_neox.rotary_emb, modeling_gpt_neox.apply_rotary_pos_emb, 16)
    compare_swapped(
        model,
        modeling_gpt_neox,
        "gpt_neox.rotary_emb",
        "apply_rotary_pos_emb",
        half_apply,
        rope,
        monkeypatch,
    )


def test_phi_partial_rotary(monkeypatch):
    from transformers import PhiConfig, PhiForCausalLM
    from transformers.models.phi import modeling_phi

    config = PhiConfig(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        partial_rotary_factor=0.5,
        rope_theta=1000.0,
    )
    rope = rotary_from_config(config.to_dict())
    assert (rope.rotary_dim, rope.base) == (8, 1000.0)
    compare_swapped(
        tiny(PhiForCausalLM, config),
        modeling_phi,
        "model.rotary_emb",
        "apply_rotary_pos_emb",
        half_apply,
        rope,
        monkeypatch,
    )


def test_gpt_j_interleaved(monkeypatch):
    from transformers import GPTJConfig, GPTJForCausalLM
    from transformers.models.gptj import modeling_gptj

    config = GPTJConfig(
        vocab_size=97,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=64,
        rotary_dim=8,
        n_inner=96,
    )
    rope = rotary_from_config(config)
    assert (rope.head_dim, rope.rotary_dim, rope.layout) == (16, 8, "interleaved")
    compare_swapped(
        tiny(GPTJForCausalLM, config),
        modeling_gptj,
        "transformer.rotary_emb",
        "apply_rotary_pos_emb",
        interleaved_apply,
        rope,
        monkeypatch,
        sin_first=True,
    )
