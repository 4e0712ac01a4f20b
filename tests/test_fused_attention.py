"""The fused path (flex_attention with a score_mod) gives what SDPA with the bias gives.

Compiling flex_attention costs seconds per shape and score_mod on a small CPU, so every test
here uses one shape, built once per module, and each compiled kernel is reused.
"""

import pytest
import torch

from posenc.alibi import alibi_bias, alibi_slopes
from posenc.attention import attention_reference
from posenc.fused_attention import (
    attention_biased,
    attention_fused,
    flex_available,
    t5_offset_table,
)
from posenc.relative_bias import relative_bias_matrix

HEADS, SEQ, DIM = 4, 160, 16  # seq not a multiple of flex_attention's 128-wide tiles

needs_flex = pytest.mark.skipif(not flex_available(), reason="torch has no flex_attention")


@pytest.fixture(scope="module")
def qkv():
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(2, HEADS, SEQ, DIM, generator=g) for _ in range(3))


@pytest.fixture(scope="module")
def t5_table():
    g = torch.Generator().manual_seed(1)
    return torch.randn(32, HEADS, generator=g)  # (buckets, heads), larger than trained weights


def test_offset_table_is_the_bias_matrix_on_its_diagonals(t5_table):
    per_offset = t5_offset_table(t5_table, SEQ, max_distance=64)  # (heads, 2·SEQ − 1)
    full = relative_bias_matrix(t5_table, SEQ, SEQ, bidirectional=False, max_distance=64)
    i, j = torch.meshgrid(torch.arange(SEQ), torch.arange(SEQ), indexing="ij")
    torch.testing.assert_close(per_offset[:, j - i + SEQ - 1], full, atol=0, rtol=0)


def test_reference_path_matches_the_written_out_formula(qkv, t5_table):
    q, k, v = qkv
    alibi = attention_biased(q, k, v, scheme="alibi", slopes=alibi_slopes(HEADS))
    expected = attention_reference(q, k, v, bias=alibi_bias(HEADS, SEQ), causal=True)
    torch.testing.assert_close(alibi, expected, atol=1e-5, rtol=1e-5)
    t5 = attention_biased(q, k, v, scheme="t5", table=t5_table)
    bias = relative_bias_matrix(t5_table, SEQ, SEQ, bidirectional=False)
    expected = attention_reference(q, k, v, bias=bias, causal=True)
    torch.testing.assert_close(t5, expected, atol=1e-5, rtol=1e-5)


@needs_flex
@pytest.mark.parametrize("scheme", ["alibi", "t5"])
def test_fused_equals_sdpa_with_the_bias(qkv, t5_table, scheme):
    q, k, v = qkv
    args = {"scheme": scheme, "slopes": alibi_slopes(HEADS), "table": t5_table}
    with torch.no_grad():
        fused = attention_fused(q, k, v, **args)
    torch.testing.assert_close(fused, attention_biased(q, k, v, **args), atol=2e-5, rtol=2e-5)
    assert fused.shape == q.shape


@needs_flex
def test_fused_decoding_step_is_end_aligned(qkv, t5_table):
    """Fewer queries than keys (a KV cache): query i stands at position i + k_len − q_len."""
    q, k, v = qkv
    args = {"scheme": "t5", "table": t5_table}
    with torch.no_grad():
        fused = attention_fused(q[..., -32:, :], k, v, **args)
    torch.testing.assert_close(fused, attention_biased(q, k, v, **args)[..., -32:, :])


def test_bad_arguments_name_what_is_allowed(qkv):
    q, k, v = qkv
    with pytest.raises(ValueError, match="scheme must be one of"):
        attention_fused(q, k, v, scheme="rope")
    with pytest.raises(ValueError, match="slopes of shape"):
        attention_fused(q, k, v, scheme="alibi", slopes=alibi_slopes(HEADS + 1))
    with pytest.raises(ValueError, match="table"):
        attention_biased(q, k, v, scheme="t5")
    with pytest.raises(ValueError, match="batch, heads, seq"):
        attention_fused(q[0], k[0], v[0])


def test_without_flex_attention_the_sdpa_path_answers(qkv, monkeypatch):
    import posenc.fused_attention as fused

    monkeypatch.setattr(fused, "flex_attention", None)  # as on a torch without flex_attention
    q, k, v = qkv
    args = {"scheme": "alibi", "slopes": alibi_slopes(HEADS), "causal": False}
    expected = attention_reference(q, k, v, bias=alibi_bias(HEADS, SEQ, causal=False))
    torch.testing.assert_close(fused.attention_fused(q, k, v, **args), expected)
