"""Notebook 01 graders reject the classic mistakes and accept right answers."""

import pytest
import torch
from conftest import SOLUTIONS
from grader_helpers import assert_accepted, assert_rejected
from solution_code import solution_namespace

NB = SOLUTIONS / "01_learned_positions.ipynb"
# Right answers to build wrong ones on: the solution notebook's, never the library's
# (a function that reaches the library's answer earns no credit).
SOL = solution_namespace(NB)
embed_with_positions = SOL["embed_with_positions"]
max_usable_length = SOL["max_usable_length"]


def _guard(ids, table):
    if ids.shape[-1] > table.shape[0]:
        raise ValueError("too long")


def concatenated(ids, tokens, positions):
    """concatenates instead of adding"""
    _guard(ids, positions)
    seq = ids.shape[-1]
    pos = positions[:seq].expand(*ids.shape, -1)
    return torch.cat([tokens[ids], pos], dim=-1)


def positions_from_one(ids, tokens, positions):
    """positions 1 … seq"""
    _guard(ids, positions)
    seq = ids.shape[-1]
    return tokens[ids] + positions[torch.arange(1, seq + 1).clamp(max=positions.shape[0] - 1)]


def position_by_token_id(ids, tokens, positions):
    """indexes the position table with token ids"""
    _guard(ids, positions)
    return tokens[ids] + positions[ids]


def no_positions(ids, tokens, positions):
    """forgets the positions"""
    _guard(ids, positions)
    return tokens[ids]


def multiplied(ids, tokens, positions):
    """multiplies token and position vectors"""
    _guard(ids, positions)
    return tokens[ids] * positions[: ids.shape[-1]]


def batch_axis_positions(ids, tokens, positions):
    """positions along the batch axis"""
    _guard(ids, positions)
    if ids.ndim == 1:
        return tokens[ids] + positions[: ids.shape[0]]
    return tokens[ids] + positions[: ids.shape[0]].unsqueeze(1)


def truncates_silently(ids, tokens, positions):
    """wraps around instead of refusing a too-long sequence"""
    seq = ids.shape[-1]
    return tokens[ids] + positions[torch.arange(seq) % positions.shape[0]]


def index_error_when_too_long(ids, tokens, positions):
    """lets PyTorch raise IndexError for a too-long sequence"""
    return tokens[ids] + positions[torch.arange(ids.shape[-1])]


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (concatenated, "concatenated"),
        (positions_from_one, "start at 1"),
        (position_by_token_id, "by token id"),
        (no_positions, "missing"),
        (multiplied, "multiplied"),
        (batch_axis_positions, None),
        (truncates_silently, "raise ValueError"),
        (index_error_when_too_long, "IndexError"),
    ],
)
def test_embed_with_positions_grader_rejects(wrong, hint):
    assert_rejected("embed_with_positions", wrong, hint)


def test_batch_axis_mistake_is_named():
    from posenc.grading import run_cases

    def batch_axis_when_it_runs(ids, tokens, positions):
        _guard(ids, positions)
        if ids.ndim == 2:
            return tokens[ids] + positions[: ids.shape[0]].unsqueeze(1)
        return tokens[ids] + positions[: ids.shape[-1]]

    assert "batch axis" in run_cases("embed_with_positions", batch_axis_when_it_runs).hint


def width(table, offset=0):
    """returns the embedding width"""
    return table.shape[1] - offset


def ignores_offset(table, offset=0):
    """forgets OPT's reserved rows"""
    return table.shape[0]


def last_position(table, offset=0):
    """returns the last index, not the length"""
    return table.shape[0] - offset - 1


def adds_offset(table, offset=0):
    """adds the offset"""
    return table.shape[0] + offset


def as_float(table, offset=0):
    """returns a float"""
    return float(table.shape[0] - offset)


@pytest.mark.parametrize(
    "wrong, hint",
    [
        (width, "width"),
        (ignores_offset, "offset rows"),
        (last_position, "off by one"),
        (adds_offset, "not added"),
        (as_float, "expected an int"),
    ],
)
def test_max_usable_length_grader_rejects(wrong, hint):
    assert_rejected("max_usable_length", wrong, hint)


def test_solution_answers_pass():
    ns = solution_namespace(NB)
    assert_accepted("embed_with_positions", ns["embed_with_positions"])
    assert_accepted("max_usable_length", ns["max_usable_length"])
