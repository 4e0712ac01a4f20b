"""Shaw et al.'s relative attention against a float64 loop written from the paper's equations."""

import math

import pytest
import torch

from posenc.relative_shaw import (
    shaw_attention_scores,
    shaw_relative_attention,
    shaw_relative_indices,
)


def shaw_loops(q, k, v, table_k, table_v, K):
    """Equations (3)–(5) of Shaw et al., one pair at a time, in float64; q: (q_len, d)."""
    q, k, v, table_k, table_v = (t.double() for t in (q, k, v, table_k, table_v))
    q_len, k_len, d = q.shape[0], k.shape[0], q.shape[1]
    out = torch.zeros(q_len, d, dtype=torch.float64)
    for i in range(q_len):
        pos_i = i + k_len - q_len  # queries are the last positions
        rows = [min(max(j - pos_i, -K), K) + K for j in range(k_len)]
        e = torch.stack([q[i] @ (k[j] + table_k[rows[j]]) for j in range(k_len)]) / math.sqrt(d)
        alpha = torch.softmax(e, 0)
        for j in range(k_len):
            out[i] += alpha[j] * (v[j] + table_v[rows[j]])
    return out


@pytest.mark.parametrize("q_len, k_len, K", [(5, 5, 2), (7, 7, 10), (3, 9, 3), (1, 6, 0)])
def test_matches_the_paper_equations(q_len, k_len, K):
    g = torch.Generator().manual_seed(q_len * 100 + K)
    q, k, v = (torch.randn(n, 8, generator=g) for n in (q_len, k_len, k_len))
    tk, tv = torch.randn(2 * K + 1, 8, generator=g), torch.randn(2 * K + 1, 8, generator=g)
    out = shaw_relative_attention(q, k, v, tk, tv, K)
    torch.testing.assert_close(out.double(), shaw_loops(q, k, v, tk, tv, K), atol=1e-5, rtol=0)


def test_batched_heads_are_independent_and_tables_shared():
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 6, 16, generator=g).unbind(0)  # (batch, heads, seq, d)
    tk, tv = torch.randn(2, 7, 16, generator=g).unbind(0)
    out = shaw_relative_attention(q, k, v, tk, tv, 3)
    assert out.shape == (2, 4, 6, 16)
    one = shaw_relative_attention(q[1, 2], k[1, 2], v[1, 2], tk, tv, 3)
    torch.testing.assert_close(out[1, 2], one)


def test_clipping_shares_the_edge_rows():
    idx = shaw_relative_indices(6, 6, 2)
    assert idx[0].tolist() == [2, 3, 4, 4, 4, 4]  # offsets 0, 1, 2, 3, 4, 5 → clipped at +2
    assert idx[5].tolist() == [0, 0, 0, 0, 1, 2]  # offsets −5 … 0 → clipped at −2
    assert torch.equal(idx[1:, 1:], idx[:-1, :-1])  # Toeplitz: depends on j − i only


def test_zero_tables_give_plain_attention():
    g = torch.Generator().manual_seed(1)
    q, k, v = torch.randn(3, 5, 8, generator=g).unbind(0)
    zeros = torch.zeros(5, 8)
    plain = torch.softmax(q @ k.T / math.sqrt(8), -1) @ v
    torch.testing.assert_close(shaw_relative_attention(q, k, v, zeros, zeros, 2), plain)


def test_scores_are_the_logits_of_the_attention():
    g = torch.Generator().manual_seed(2)
    q, k = torch.randn(2, 4, 8, generator=g).unbind(0)
    table = torch.randn(3, 8, generator=g)
    e = shaw_attention_scores(q, k, table, 1)
    want = (
        q @ k.T + torch.stack([q[i] @ table[shaw_relative_indices(4, 4, 1)[i]].T for i in range(4)])
    ) / math.sqrt(8)
    torch.testing.assert_close(e, want)


BAD = [
    (lambda: shaw_relative_indices(3, 3, -1), ValueError, "max_relative"),
    (lambda: shaw_relative_indices(3, 3, 1.5), TypeError, "max_relative"),
    (
        lambda: shaw_relative_attention(
            torch.randn(3, 4),
            torch.randn(3, 4),
            torch.randn(3, 4),
            torch.randn(4, 4),
            torch.randn(5, 4),
            2,
        ),
        ValueError,
        "table_k",
    ),
    (
        lambda: shaw_relative_attention(
            torch.randn(3, 4),
            torch.randn(3, 4),
            torch.randn(3, 4),
            torch.randn(5, 4),
            torch.randn(5, 3),
            2,
        ),
        ValueError,
        "table_v",
    ),
    (
        lambda: shaw_relative_attention(
            torch.randn(3, 4),
            torch.randn(3, 5),
            torch.randn(3, 4),
            torch.randn(5, 4),
            torch.randn(5, 4),
            2,
        ),
        ValueError,
        "k must",
    ),
    (
        lambda: shaw_relative_attention(
            torch.randn(3, 4),
            torch.randn(3, 4),
            torch.randn(2, 4),
            torch.randn(5, 4),
            torch.randn(5, 4),
            2,
        ),
        ValueError,
        "v must",
    ),
    (
        lambda: shaw_relative_attention(
            torch.randn(4),
            torch.randn(3, 4),
            torch.randn(3, 4),
            torch.randn(5, 4),
            torch.randn(5, 4),
            2,
        ),
        ValueError,
        "q must",
    ),
    (
        lambda: shaw_relative_attention(
            torch.randn(3, 4),
            torch.randn(3, 4),
            torch.ones(3, 4, dtype=torch.long),
            torch.randn(5, 4),
            torch.randn(5, 4),
            2,
        ),
        TypeError,
        "v must",
    ),
]


@pytest.mark.parametrize("make, error, name", BAD)
def test_bad_input_names_the_argument(make, error, name):
    with pytest.raises(error, match=name):
        make()
