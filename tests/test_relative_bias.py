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
