"""T5 buckets against an independent, scalar re-statement of the T5 rule; Shaw scores."""

import math

import pytest
import torch

from posenc.relative_bias import (
    T5RelativeBias,
    relative_bias_matrix,
    relative_positions,
    shaw_attention_scores,
    shaw_relative_indices,
    t5_relative_bucket,
)


def t5_bucket_scalar(rel: int, bidirectional: bool, num_buckets: int, max_distance: int) -> int:
    """The rule from the T5 paper/code, one integer at a time, in plain Python."""
    ret = 0
    n = num_buckets
    if bidirectional:
        n //= 2
        if rel > 0:
            ret += n
        dist = abs(rel)
    else:
        dist = max(-rel, 0)
    exact = n // 2
    if dist < exact:
        return ret + dist
    val = exact + int(math.log(dist / exact) / math.log(max_distance / exact) * (n - exact))
    return ret + min(val, n - 1)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (16, 64), (8, 20), (64, 512)])
def test_matches_scalar_rule(bidirectional, num_buckets, max_distance):
    rel = torch.arange(-700, 701)
    ours = t5_relative_bucket(
        rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
    theirs = [t5_bucket_scalar(r, bidirectional, num_buckets, max_distance) for r in rel.tolist()]
    assert ours.tolist() == theirs


def test_known_values_of_the_default_t5_setting():
    b = lambda r: t5_relative_bucket(torch.tensor(r)).item()  # noqa: E731
    assert [b(0), b(-1), b(-7), b(1), b(7)] == [0, 1, 7, 17, 23]  # exact range: 0 … 7
    assert b(-8) == 8 and b(-127) == 15 and b(-10_000) == 15  # log range, capped
    assert b(8) == 24 and b(10_000) == 31


def test_buckets_are_monotone_in_distance():
    past = t5_relative_bucket(-torch.arange(0, 1000), bidirectional=False)
    assert (past[1:] >= past[:-1]).all() and past.max() == 31


def test_bias_matrix_shape_alignment_and_toeplitz():
    table = torch.randn(16, 3)
    full = relative_bias_matrix(table, 10, 10, bidirectional=False, max_distance=64)
    assert full.shape == (3, 10, 10)
    # Depends on j − i only: constant along diagonals.
    assert torch.equal(full[:, 1:, 1:], full[:, :-1, :-1])
    # Decoding with a cache: the last 2 queries of a 10-token sequence.
    torch.testing.assert_close(
        relative_bias_matrix(table, 2, 10, bidirectional=False, max_distance=64), full[:, -2:]
    )


def test_module_starts_at_zero_and_learns_per_head():
    bias = T5RelativeBias(4, num_buckets=16, max_distance=32)
    assert bias.bias(5, 5).abs().sum() == 0
    bias.bias(5, 5).sum().backward()
    assert bias.table.grad.shape == (16, 4)


def test_shaw_indices_and_scores():
    idx = shaw_relative_indices(4, 4, max_relative=2)
    assert idx.tolist() == [[2, 3, 4, 4], [1, 2, 3, 4], [0, 1, 2, 3], [0, 0, 1, 2]]
    q, k, table = torch.randn(4, 8), torch.randn(4, 8), torch.randn(5, 8)
    scores = shaw_attention_scores(q, k, table, max_relative=2)
    i, j = 3, 1
    expected = q[i] @ (k[j] + table[idx[i, j]]) / math.sqrt(8)
    torch.testing.assert_close(scores[i, j], expected)


def test_relative_positions_checks_lengths():
    assert relative_positions(1, 3).tolist() == [[-2, -1, 0]]
    with pytest.raises(ValueError, match="q_len"):
        relative_positions(4, 2)


def brute_bias(table, query_pos, key_pos, bidirectional, max_distance, allowed):
    """B[h, i, j] = table[bucket(p_j − p_i), h] from the scalar rule, one pair at a time."""
    buckets, heads = table.shape
    out = torch.empty(heads, len(query_pos), len(key_pos), dtype=table.dtype)
    for i, p_i in enumerate(query_pos):
        for j, p_j in enumerate(key_pos):
            b = t5_bucket_scalar(p_j - p_i, bidirectional, buckets, max_distance)
            out[:, i, j] = table[b] if allowed[i][j] else float("-inf")
    return out


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "q_len, k_len, offset", [(7, 7, None), (3, 9, None), (1, 40, 10), (4, 12, 0)]
)
def test_toeplitz_bias_matches_the_pairwise_rule(bidirectional, causal, q_len, k_len, offset):
    table = torch.randn(16, 3, dtype=torch.float64)
    start = k_len - q_len if offset is None else offset
    query = list(range(start, start + q_len))
    allowed = [[not causal or j <= p for j in range(k_len)] for p in query]
    expected = brute_bias(table, query, list(range(k_len)), bidirectional, 20, allowed)
    ours = relative_bias_matrix(
        table,
        q_len,
        k_len,
        bidirectional=bidirectional,
        max_distance=20,
        causal=causal,
        offset=offset,
    )
    assert ours.dtype == torch.float64 and torch.equal(ours, expected)
    gathered = relative_bias_matrix(
        table,
        q_len,
        k_len,
        bidirectional=bidirectional,
        max_distance=20,
        causal=causal,
        offset=offset,
        positions=torch.arange(k_len)[None],  # batched: the general path
    )
    assert torch.equal(gathered[0], expected)


def test_static_cache_offset_is_not_the_end():
    """compute_bias(1, 64) with 10 past tokens: the query is at slot 10, not 63."""
    table = torch.randn(32, 2)
    at_10 = relative_bias_matrix(table, 1, 64, bidirectional=False, offset=10)
    expected = brute_bias(table, [10], list(range(64)), False, 128, [[True] * 64])
    assert torch.equal(at_10, expected)
    # Causal: the slots after 10 are empty and hidden.
    causal = relative_bias_matrix(table, 1, 64, bidirectional=False, offset=10, causal=True)
    assert torch.isinf(causal[..., 11:]).all() and torch.equal(causal[..., :11], expected[..., :11])
    assert not torch.equal(at_10, relative_bias_matrix(table, 1, 64, bidirectional=False))


def test_positions_and_padding_per_sequence():
    table = torch.randn(8, 2)
    real = torch.tensor([[False, True, True, True, True], [True, True, False, True, True]])
    positions = (real.long().cumsum(-1) - 1).clamp(min=0)
    bias = relative_bias_matrix(
        table,
        5,
        5,
        bidirectional=True,
        max_distance=10,
        causal=True,
        positions=positions,
        key_padding_mask=real,
    )
    assert bias.shape == (2, 2, 5, 5)
    for b in range(2):
        p = positions[b].tolist()
        allowed = [[j <= i and bool(real[b, j]) for j in range(5)] for i in range(5)]
        torch.testing.assert_close(bias[b], brute_bias(table, p, p, True, 10, allowed))


def test_gradient_reaches_the_table_through_both_paths():
    for kwargs in ({}, {"key_padding_mask": torch.tensor([True, False, True, True])}):
        table = torch.randn(8, 2, requires_grad=True)
        bias = relative_bias_matrix(table, 4, 4, max_distance=10, **kwargs)
        bias[torch.isfinite(bias)].sum().backward()
        assert table.grad is not None and table.grad.abs().sum() > 0


def test_a_huge_bias_is_refused_naming_its_size_and_the_fused_path():
    with pytest.raises(ValueError, match=r"GiB.*flex_attention"):
        relative_bias_matrix(torch.zeros(32, 16), 20_000, 20_000)


BAD_T5_CALLS = [
    (lambda: t5_relative_bucket(torch.tensor([1.5, -2.0])), TypeError, "relative_position"),
    (lambda: t5_relative_bucket(torch.tensor([True])), TypeError, "relative_position"),
    (lambda: t5_relative_bucket("3"), TypeError, "relative_position"),
    (lambda: t5_relative_bucket(torch.tensor([-(2**63)])), ValueError, "relative_position"),
    (lambda: t5_relative_bucket(torch.tensor([1]), num_buckets=32.0), TypeError, "num_buckets"),
    (lambda: t5_relative_bucket(torch.tensor([1]), num_buckets=2), ValueError, "num_buckets"),
    (lambda: t5_relative_bucket(torch.tensor([1]), max_distance=8), ValueError, "max_distance"),
    (lambda: t5_relative_bucket(torch.tensor([1]), bidirectional=1), TypeError, "bidirectional"),
    (lambda: relative_bias_matrix(torch.zeros(8, 2).long(), 3, 3), TypeError, "bias_table"),
    (lambda: relative_bias_matrix(torch.zeros(8), 3, 3), ValueError, "bias_table"),
    (lambda: relative_bias_matrix(torch.zeros(8, 2), 2.5, 3), TypeError, "q_len"),
    (lambda: relative_bias_matrix(torch.zeros(8, 2), 3, 2), ValueError, "q_len <= k_len"),
    (lambda: relative_bias_matrix(torch.zeros(8, 2), 1, 8, offset=8), ValueError, "offset"),
    (lambda: relative_bias_matrix(torch.zeros(8, 2), 3, 3, causal=None), TypeError, "causal"),
    (lambda: relative_positions(3, positions=torch.arange(3.0)), TypeError, "positions"),
    (lambda: T5RelativeBias(0), ValueError, "num_heads"),
    (lambda: T5RelativeBias(4, num_buckets=3, bidirectional=True), ValueError, "num_buckets"),
    (lambda: shaw_relative_indices(3, 3, -1), ValueError, "max_relative"),
    (lambda: shaw_relative_indices(3, 3, 1.5), TypeError, "max_relative"),
    (
        lambda: shaw_attention_scores(torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4), 2),
        ValueError,
        "table",
    ),
]


@pytest.mark.parametrize("call, error, word", BAD_T5_CALLS)
def test_bad_arguments_raise_naming_the_argument(call, error, word):
    with pytest.raises(error, match=word):
        call()
