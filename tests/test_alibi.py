"""ALiBi slopes against the paper's recursion re-typed here; the bias and attention."""

import math

import pytest
import torch

from posenc.alibi import ALiBi, alibi_bias, alibi_slopes, attention_with_alibi
from posenc.attention import MultiHeadAttention, attention_reference, attention_sdpa


def reference_slopes(n: int) -> list[float]:
    """The rule of the paper's code (Press et al.), written out again independently."""

    def power_of_two(k: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(k) - 3)))
        return [start * start**i for i in range(k)]

    if math.log2(n).is_integer():
        return power_of_two(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_two(closest) + reference_slopes(2 * closest)[0::2][: n - closest]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 24, 32, 40, 64, 96, 112])
def test_slopes_match_the_reference_rule(n):
    torch.testing.assert_close(alibi_slopes(n), torch.tensor(reference_slopes(n)))


def test_eight_heads_and_twelve_heads():
    assert alibi_slopes(8).tolist() == [2.0**-k for k in range(1, 9)]
    s12 = alibi_slopes(12)
    assert not (s12[1:] < s12[:-1]).all(), "12 heads are not monotone"
    assert s12[8].item() == pytest.approx(2**-0.5)


def test_bias_values_mask_and_end_alignment():
    b = alibi_bias(2, 3)
    m = alibi_slopes(2)
    assert b[0, 2, 0].item() == pytest.approx(-2 * m[0].item())
    assert b[1, 1, 1].item() == 0 and b[0, 0, 1].item() == float("-inf")
    torch.testing.assert_close(alibi_bias(2, 2, 5), alibi_bias(2, 5)[:, -2:])
    sym = alibi_bias(2, 4, causal=False)
    torch.testing.assert_close(sym, sym.transpose(-1, -2))


def test_shift_invariance_key_only_bias_equals_alibi():
    """Adding +m·j (a bias on keys only) equals −m·(i − j): softmax ignores per-row constants."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 4, 7, 8).unbind(0)
    m = alibi_slopes(4)[:, None, None]
    key_only = (m * torch.arange(7.0)).expand(4, 7, 7)
    a = attention_reference(q, k, v, causal=True, bias=key_only)
    torch.testing.assert_close(
        a, attention_with_alibi(q, k, v, alibi_slopes(4)), atol=1e-5, rtol=1e-5
    )


def test_attention_matches_sdpa_and_decoding_matches_full():
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 2, 6, 10, 16).unbind(0)
    slopes = alibi_slopes(6)
    full = attention_with_alibi(q, k, v, slopes)
    torch.testing.assert_close(
        full, attention_sdpa(q, k, v, bias=alibi_bias(6, 10)), atol=1e-5, rtol=1e-5
    )
    last = attention_with_alibi(q[..., -1:, :], k, v, slopes)
    torch.testing.assert_close(last, full[..., -1:, :], atol=1e-5, rtol=1e-5)


def test_scheme_in_multi_head_attention_and_bad_heads():
    torch.manual_seed(0)
    out = MultiHeadAttention(24, 12, ALiBi(12))(torch.randn(2, 5, 24))
    assert out.shape == (2, 5, 24)
    with pytest.raises(ValueError, match="num_heads"):
        alibi_slopes(0)
