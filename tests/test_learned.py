"""Learned absolute positions: the table, its hard limit, and the ways around it."""

import pytest
import torch

from posenc.learned import (
    LearnedPositionalEmbedding,
    clamped_positions,
    embed_with_positions,
    interpolate_table,
    max_usable_length,
)


def test_lookup_by_length_and_by_positions():
    torch.manual_seed(0)
    emb = LearnedPositionalEmbedding(16, 4)
    assert emb(5).shape == (5, 4)
    torch.testing.assert_close(emb(torch.tensor([[3, 1]])), emb.weight[[3, 1]][None])
    assert sum(p.numel() for p in emb.parameters()) == 16 * 4


@pytest.mark.parametrize("bad", [16, 100, -1])
def test_positions_outside_the_table_raise_value_error_naming_max_len(bad):
    emb = LearnedPositionalEmbedding(16, 4)
    with pytest.raises(ValueError, match="max_len=16"):
        emb(torch.tensor([0, bad]))


def test_length_beyond_table_raises_and_float_positions_refused():
    emb = LearnedPositionalEmbedding(8, 2)
    with pytest.raises(ValueError, match="max_len"):
        emb(9)
    with pytest.raises(TypeError, match="integer"):
        emb(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="max_len"):
        LearnedPositionalEmbedding(0, 4)


def test_embed_adds_and_trains():
    emb = LearnedPositionalEmbedding(10, 3)
    x = torch.zeros(2, 4, 3)
    out = emb.embed(x, torch.arange(4))
    torch.testing.assert_close(out, emb.weight[:4].expand(2, 4, 3))
    out.sum().backward()
    assert emb.weight.grad[:4].abs().sum() > 0 and emb.weight.grad[4:].abs().sum() == 0


def test_clamp_maps_everything_past_the_table_to_the_last_row():
    assert clamped_positions(torch.arange(6), 4).tolist() == [0, 1, 2, 3, 3, 3]


def test_interpolation_keeps_end_rows_and_blends_between():
    table = torch.tensor([[0.0, 10.0], [2.0, 30.0], [4.0, 50.0]])
    out = interpolate_table(table, 5)
    assert out.shape == (5, 2)
    torch.testing.assert_close(out[0], table[0])
    torch.testing.assert_close(out[-1], table[-1])
    torch.testing.assert_close(out[1], (table[0] + table[1]) / 2)


def test_embed_with_positions_and_usable_length():
    tokens, positions = torch.randn(5, 3), torch.randn(4, 3)
    ids = torch.tensor([[1, 2, 3], [0, 0, 4]])
    out = embed_with_positions(ids, tokens, positions)
    torch.testing.assert_close(out[1, 2], tokens[4] + positions[2])
    with pytest.raises(ValueError, match="max_len=4"):
        embed_with_positions(torch.zeros(5, dtype=torch.long), tokens, positions)
    assert max_usable_length(torch.zeros(2050, 8), offset=2) == 2048
    with pytest.raises(ValueError, match="offset"):
        max_usable_length(torch.zeros(4, 8), offset=4)


BAD_LEARNED_CALLS = [
    (lambda: LearnedPositionalEmbedding(8.0, 4), TypeError, "max_len"),
    (lambda: LearnedPositionalEmbedding(8, True), TypeError, "dim"),
    (lambda: LearnedPositionalEmbedding(8, 4)(2.5), TypeError, "length"),
    (lambda: LearnedPositionalEmbedding(8, 4)([0, 1]), TypeError, "length"),
    (lambda: LearnedPositionalEmbedding(8, 4)(torch.tensor([True])), TypeError, "positions"),
    (lambda: LearnedPositionalEmbedding(8, 4).embed(torch.zeros(2, 3), 2), ValueError, "x"),
    (lambda: clamped_positions(torch.arange(4), 0), ValueError, "max_len"),
    (lambda: clamped_positions(torch.arange(4), 2.5), TypeError, "max_len"),
    (lambda: clamped_positions(torch.arange(4.0), 2), TypeError, "positions"),
    (lambda: clamped_positions(torch.tensor([-1, 2]), 2), ValueError, "positions"),
    (lambda: interpolate_table(torch.zeros(4, 2).long(), 8), TypeError, "table"),
    (lambda: interpolate_table(torch.zeros(4, 2), 8.0), TypeError, "new_len"),
    (lambda: interpolate_table(torch.zeros(4, 2), 0), ValueError, "new_len"),
    (lambda: interpolate_table(torch.zeros(4), 8), ValueError, "table"),
    (
        lambda: embed_with_positions(torch.tensor([0.0]), torch.zeros(4, 2), torch.zeros(4, 2)),
        TypeError,
        "token_ids",
    ),
    (
        lambda: embed_with_positions(torch.tensor([0]), torch.zeros(4, 2), torch.zeros(4, 3)),
        ValueError,
        "width",
    ),
    (
        lambda: embed_with_positions(torch.tensor([4]), torch.zeros(4, 2), torch.zeros(4, 2)),
        ValueError,
        "token_ids",
    ),
    (lambda: max_usable_length(torch.zeros(4, 2), 1.0), TypeError, "offset"),
    (lambda: max_usable_length(torch.zeros(4, 2), 4), ValueError, "offset"),
]


@pytest.mark.parametrize("call, error, word", BAD_LEARNED_CALLS)
def test_bad_arguments_raise_naming_the_argument(call, error, word):
    with pytest.raises(error, match=word):
        call()


def test_float64_tables_stay_float64_and_one_row_interpolates():
    table = torch.randn(4, 3, dtype=torch.float64)
    assert interpolate_table(table, 7).dtype == torch.float64
    assert torch.equal(interpolate_table(table[:1], 3), table[:1].expand(3, -1))
