"""posenc's ALiBi and T5 biases inside tiny random Hugging Face models (BLOOM, MPT, T5).

Each test builds a model from a config object (no download), swaps posenc's bias in where the
model computes its own, and compares logits; or compares the biases themselves. Skipped, with
the reason printed, when ``transformers`` is not installed (the ``compare`` extra).
"""

from __future__ import annotations

import warnings

import pytest
import torch

from posenc.alibi import alibi_bias
from posenc.attention import visible_keys
from posenc.relative_bias import relative_bias_matrix

try:
    import transformers
except ImportError:  # pragma: no cover - depends on the environment
    REASON = (
        "transformers is not installed: the Hugging Face interop tests of the ALiBi and T5 "
        "biases DID NOT RUN (install the 'compare' extra to run them)"
    )
    warnings.warn(REASON, stacklevel=1)
    pytest.skip(REASON, allow_module_level=True)

HEADS = 4


def _padded_ids(vocab: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two sequences: the first padded on the left, the second with a padding hole inside."""
    ids = torch.randint(3, vocab, (2, length))
    mask = torch.ones(2, length, dtype=torch.long)
    mask[0, :4] = 0
    mask[1, 6:9] = 0
    return ids, mask


def _real_rows(mask: torch.Tensor) -> torch.Tensor:
    return mask.bool()  # (batch, seq): the query positions whose outputs mean something


# --- ALiBi: BLOOM ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bloom():
    torch.manual_seed(0)
    config = transformers.BloomConfig(
        vocab_size=64,
        hidden_size=32,
        n_layer=2,
        n_head=HEADS,
        attn_implementation="eager",
        initializer_range=0.2,  # larger than BLOOM's 0.02, so that positions visibly matter
    )
    return transformers.BloomForCausalLM(config).eval()


def _bloom_positions(mask: torch.Tensor) -> torch.Tensor:
    """BLOOM counts real tokens only: position = number of real tokens before, 0 on padding."""
    return (mask.cumsum(-1) - 1).clamp(min=0) * mask


def test_bloom_logits_with_posenc_alibi_and_padding(bloom, monkeypatch):
    ids, mask = _padded_ids(64, 16)
    with torch.no_grad():
        theirs = bloom(ids, attention_mask=mask).logits

    def posenc_alibi(attention_mask, num_heads, dtype):
        bias = alibi_bias(num_heads, attention_mask.shape[-1], positions=_bloom_positions(mask))
        return bias.reshape(-1, *bias.shape[-2:]).to(dtype)  # (batch · heads, seq, seq)

    monkeypatch.setattr(bloom.transformer, "build_alibi_tensor", posenc_alibi)
    with torch.no_grad():
        ours = bloom(ids, attention_mask=mask).logits
    real = _real_rows(mask)
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)

    # The positions matter: counting the hole as positions (posenc's default) is not BLOOM.
    monkeypatch.setattr(
        bloom.transformer,
        "build_alibi_tensor",
        lambda m, h, dtype: alibi_bias(h, 16).repeat(2, 1, 1),
    )
    with torch.no_grad():
        raw = bloom(ids, attention_mask=mask).logits
    assert (raw[1][real[1]] - theirs[1][real[1]]).abs().max() > 1e-2


def test_bloom_alibi_tensor_gives_posencs_attention_weights():
    """BLOOM's key-only bias m·p_j plus its padding mask, against posenc's −m·(p_i − p_j) with
    the key padding mask folded in: the same softmax on every real query row."""
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    _, mask = _padded_ids(64, 16)
    seq = mask.shape[-1]
    hf = build_alibi_tensor(mask, HEADS, torch.float32).view(2, HEADS, 1, seq)
    allowed = visible_keys(seq, causal=True, key_padding_mask=mask)[:, None]  # (2, 1, seq, seq)
    hf_weights = torch.softmax(hf.masked_fill(~allowed, float("-inf")), -1)
    ours = alibi_bias(HEADS, seq, positions=_bloom_positions(mask), key_padding_mask=mask)
    real = _real_rows(mask)[:, None, :].expand(2, HEADS, seq)
    torch.testing.assert_close(torch.softmax(ours, -1)[real], hf_weights[real])


# --- ALiBi: MPT -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mpt():
    torch.manual_seed(1)
    config = transformers.MptConfig(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=HEADS,
        max_seq_len=24,
        expansion_ratio=2,
        initializer_range=0.2,
    )
    return transformers.MptForCausalLM(config).eval()


def test_mpt_logits_with_posenc_alibi_and_padding(mpt, monkeypatch):
    ids, mask = _padded_ids(64, 16)
    with torch.no_grad():
        theirs = mpt(ids, attention_mask=mask).logits

    def posenc_alibi(num_heads, sequence_length, alibi_bias_max=8, device=None):
        # MPT counts raw positions, padding included; its own mask hides what must be hidden.
        return alibi_bias(num_heads, sequence_length, causal=False).to(device)

    monkeypatch.setattr(mpt.transformer, "build_mpt_alibi_tensor", posenc_alibi)
    with torch.no_grad():
        ours = mpt(ids, attention_mask=mask).logits
    real = _real_rows(mask)
    torch.testing.assert_close(ours[real], theirs[real], atol=1e-5, rtol=1e-5)


def test_mpt_alibi_tensor_gives_posencs_attention_weights():
    from transformers.models.mpt.modeling_mpt import build_mpt_alibi_tensor

    seq = 12
    hf = build_mpt_alibi_tensor(HEADS, seq)  # (heads, 1, seq): m_h · (j − (seq − 1))
    causal = visible_keys(seq, causal=True)
    hf_weights = torch.softmax(hf.masked_fill(~causal, float("-inf")), -1)
    torch.testing.assert_close(torch.softmax(alibi_bias(HEADS, seq), -1), hf_weights)


# --- T5: encoder, decoder, static-cache offsets ----------------------------------------------


@pytest.fixture(scope="module")
def t5():
    torch.manual_seed(2)
    config = transformers.T5Config(
        vocab_size=64,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=HEADS,
        relative_attention_num_buckets=8,  # few buckets and a short range: the log buckets
        relative_attention_max_distance=12,  # and the cap are reached within 30 tokens
        decoder_start_token_id=0,
        pad_token_id=0,
    )
    return transformers.T5ForConditionalGeneration(config).eval()


def _t5_attentions(model):
    """The self-attention layers that own a relative bias: encoder and decoder block 0."""
    return [stack.block[0].layer[0].SelfAttention for stack in (model.encoder, model.decoder)]


def _posenc_compute_bias(attn):
    def compute_bias(query_length, key_length, device=None, past_seen_tokens=0):
        bias = relative_bias_matrix(
            attn.relative_attention_bias.weight,  # (buckets, heads)
            query_length,
            key_length,
            bidirectional=not attn.is_decoder,
            max_distance=attn.relative_attention_max_distance,
            offset=past_seen_tokens,
        )
        return bias[None]  # (1, heads, q, k)

    return compute_bias


def test_t5_logits_with_posenc_bias_encoder_and_decoder(t5, monkeypatch):
    ids = torch.randint(1, 64, (2, 30))
    labels = torch.randint(1, 64, (2, 25))
    with torch.no_grad():
        theirs = t5(input_ids=ids, labels=labels).logits
    for attn in _t5_attentions(t5):
        monkeypatch.setattr(attn, "compute_bias", _posenc_compute_bias(attn))
    with torch.no_grad():
        ours = t5(input_ids=ids, labels=labels).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("past", [0, 10, 63])
def test_t5_static_cache_bias_with_past_tokens(t5, past):
    """compute_bias(1, 64) with ``past`` tokens already in a 64-slot static cache."""
    encoder_attn, decoder_attn = _t5_attentions(t5)
    for attn in (encoder_attn, decoder_attn):
        with torch.no_grad():
            theirs = attn.compute_bias(1, 64, past_seen_tokens=past)
            ours = _posenc_compute_bias(attn)(1, 64, past_seen_tokens=past)
        assert torch.equal(ours, theirs)


def _decode_through_a_static_cache(model, ids, decoder_ids, slots=16):
    """Teacher-forced decoding one token at a time through a static self-attention cache of
    ``slots`` slots: at step t the query is slot t of 16, not the last slot."""
    from transformers import DynamicCache, EncoderDecoderCache, StaticCache

    cache = EncoderDecoderCache(
        StaticCache(config=model.config, max_cache_len=slots), DynamicCache(config=model.config)
    )
    with torch.no_grad():
        encoded = model.encoder(input_ids=ids)
        steps = [
            model(
                encoder_outputs=encoded,
                decoder_input_ids=decoder_ids[:, t : t + 1],
                cache=cache,
                use_cache=True,
            ).logits
            for t in range(decoder_ids.shape[1])
        ]
    return torch.cat(steps, dim=1)  # (batch, steps, vocab)


def test_t5_static_cache_decoding_with_posenc_bias(t5, monkeypatch):
    ids, decoder_ids = torch.randint(1, 64, (1, 20)), torch.randint(1, 64, (1, 12))
    with torch.no_grad():
        full = t5(input_ids=ids, decoder_input_ids=decoder_ids).logits
    theirs = _decode_through_a_static_cache(t5, ids, decoder_ids)
    for attn in _t5_attentions(t5):
        monkeypatch.setattr(attn, "compute_bias", _posenc_compute_bias(attn))
    ours = _decode_through_a_static_cache(t5, ids, decoder_ids)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=1e-5)

    # The offset matters: queries placed at the end of the 16 slots decode differently.
    decoder_attn = _t5_attentions(t5)[1]
    posenc_bias = _posenc_compute_bias(decoder_attn)

    def end_aligned(q_len, k_len, device=None, past_seen_tokens=0):
        return posenc_bias(q_len, k_len, past_seen_tokens=k_len - q_len)

    monkeypatch.setattr(decoder_attn, "compute_bias", end_aligned)
    wrong = _decode_through_a_static_cache(t5, ids, decoder_ids)
    assert (wrong - theirs).abs().max() > 1e-2
