"""ALiBi slopes against the paper's recursion re-typed here; the bias and attention."""

import math

import pytest
import torch

from posenc.alibi import ALiBi, alibi_bias, alibi_slopes, attention_with_alibi, bias_from_slopes
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


def brute_alibi(slopes, query_pos, key_pos, allowed, causal=True):
    """bias[h, i, j] = −m_h · (p_i − p_j) (or |·|), −inf where not allowed, one entry at a time."""
    heads, q_len, k_len = len(slopes), len(query_pos), len(key_pos)
    out = torch.empty(heads, q_len, k_len)
    for h in range(heads):
        for i in range(q_len):
            for j in range(k_len):
                d = query_pos[i] - key_pos[j]
                value = -slopes[h] * (d if causal else abs(d))
                out[h, i, j] = value if allowed[i][j] else float("-inf")
    return out


def test_static_cache_offset():
    """11th token of a 16-slot cache: query at slot 10, keys 11 … 15 are empty slots."""
    slopes = alibi_slopes(2).tolist()
    allowed = [[j <= 10 for j in range(16)]]
    expected = brute_alibi(slopes, [10], list(range(16)), allowed)
    torch.testing.assert_close(alibi_bias(2, 1, 16, offset=10), expected)
    # The end-aligned default would put the query at slot 15: not the same bias.
    assert not torch.equal(alibi_bias(2, 1, 16), expected)


def test_positions_and_padding_per_sequence():
    """BLOOM's convention: positions count real tokens only; padded keys are hidden."""
    real = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 0, 1, 1]]).bool()
    positions = (real.long().cumsum(-1) - 1).clamp(min=0)
    bias = alibi_bias(4, 5, positions=positions, key_padding_mask=real)
    assert bias.shape == (2, 4, 5, 5)
    slopes = alibi_slopes(4).tolist()
    for b in range(2):
        p = positions[b].tolist()
        allowed = [[j <= i and bool(real[b, j]) for j in range(5)] for i in range(5)]
        torch.testing.assert_close(bias[b], brute_alibi(slopes, p, p, allowed))


def test_non_causal_with_padding():
    real = torch.tensor([True, False, True, True])
    bias = alibi_bias(2, 4, causal=False, key_padding_mask=real)
    allowed = [[bool(real[j]) for j in range(4)] for _ in range(4)]
    r = list(range(4))
    torch.testing.assert_close(bias, brute_alibi(alibi_slopes(2).tolist(), r, r, allowed, False))


def test_float64_slopes_give_float64_and_half_slopes_exact_distances():
    slopes = alibi_slopes(4).double()
    assert bias_from_slopes(slopes, 3).dtype == torch.float64
    far = bias_from_slopes(torch.tensor([1.0], dtype=torch.bfloat16), 1, 1001)  # distances to 1000
    assert far.dtype == torch.bfloat16
    assert far[0, 0, 0].item() == float(torch.tensor(-1000.0, dtype=torch.bfloat16))
    assert far[0, 0, -2].item() == -1.0


def test_attention_with_alibi_offset_equals_the_rows_of_the_full_sequence():
    torch.manual_seed(2)
    q, k, v = torch.randn(3, 1, 4, 12, 8).unbind(0)
    full = attention_with_alibi(q, k, v, alibi_slopes(4))
    # Query at slot 7, keys 8 … 11 not written yet (as in a static cache): hidden by causality.
    row = attention_with_alibi(q[..., 7:8, :], k, v, alibi_slopes(4), offset=7)
    torch.testing.assert_close(row, full[..., 7:8, :], atol=1e-6, rtol=1e-5)


def test_a_huge_bias_is_refused_naming_its_size_and_the_fused_path():
    with pytest.raises(ValueError, match=r"298\.0 GiB.*flex_attention"):
        alibi_bias(8, 100_000)


BAD_ALIBI_CALLS = [
    (lambda: alibi_slopes(2.0), TypeError, "num_heads"),
    (lambda: alibi_slopes(True), TypeError, "num_heads"),
    (lambda: alibi_slopes(-3), ValueError, "num_heads"),
    (lambda: alibi_bias(2, 2.5), TypeError, "q_len"),
    (lambda: alibi_bias(2, 3, 2.5), TypeError, "k_len"),
    (lambda: alibi_bias(2, 4, 2), ValueError, "q_len <= k_len"),
    (lambda: alibi_bias(2, 2, 8, offset=7), ValueError, "offset"),
    (lambda: alibi_bias(2, 2, 8, offset=1.0), TypeError, "offset"),
    (lambda: alibi_bias(2, 3, causal="yes"), TypeError, "causal"),
    (lambda: alibi_bias(2, 3, positions=torch.arange(3.0)), TypeError, "positions"),
    (lambda: alibi_bias(2, 3, positions=torch.arange(4)), ValueError, "positions"),
    (lambda: alibi_bias(2, 3, key_padding_mask=torch.ones(2, 4)), ValueError, "key_padding_mask"),
    (lambda: alibi_bias(2, 3, key_padding_mask=torch.rand(3)), TypeError, "key_padding_mask"),
    (
        lambda: alibi_bias(
            2,
            3,
            positions=torch.zeros(2, 3, dtype=torch.long),
            key_padding_mask=torch.ones(3, 3, dtype=torch.bool),
        ),
        ValueError,
        "batch",
    ),
    (lambda: bias_from_slopes(torch.tensor([1, 2]), 3), TypeError, "slopes"),
    (lambda: bias_from_slopes([0.5, 0.25], 3), TypeError, "slopes"),
    (lambda: bias_from_slopes(torch.tensor([0.5, 0.0]), 3), ValueError, "slopes"),
    (lambda: bias_from_slopes(torch.tensor([0.5, float("nan")]), 3), ValueError, "slopes"),
    (lambda: bias_from_slopes(torch.ones(2, 2), 3), ValueError, "slopes"),
    (
        lambda: attention_with_alibi(*torch.randn(3, 1, 4, 5, 8), torch.tensor([0.5])),
        ValueError,
        "one value per head",
    ),
    (
        lambda: attention_with_alibi(*torch.randn(3, 5, 8), torch.tensor([0.5])),
        ValueError,
        "heads",
    ),
]


@pytest.mark.parametrize("call, error, word", BAD_ALIBI_CALLS)
def test_bad_arguments_raise_naming_the_argument(call, error, word):
    with pytest.raises(error, match=word):
        call()


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(
    "q_len, k_len, offset", [(6, 6, None), (2, 9, None), (1, 12, 4), (3, 7, 0)]
)
def test_diagonal_layout_matches_the_pairwise_formula(causal, q_len, k_len, offset):
    start = k_len - q_len if offset is None else offset
    query, keys = list(range(start, start + q_len)), list(range(k_len))
    allowed = [[not causal or j <= p for j in keys] for p in query]
    expected = brute_alibi(alibi_slopes(3).tolist(), query, keys, allowed, causal)
    ours = alibi_bias(3, q_len, k_len, causal=causal, offset=offset)
    torch.testing.assert_close(ours, expected)
    consecutive = alibi_bias(
        3, q_len, k_len, causal=causal, offset=offset, positions=torch.arange(k_len) + 5
    )
    torch.testing.assert_close(consecutive, expected)  # a shift of every position changes nothing
    batched = torch.arange(k_len)[None]  # (1, k_len): the general path, not the diagonals
    general = alibi_bias(3, q_len, k_len, causal=causal, offset=offset, positions=batched)
    torch.testing.assert_close(general[0], expected)
