"""The look-back study of notebook 04: per-window accuracy, and its committed results."""

import json
import math
from pathlib import Path

import pytest
import torch

from posenc.experiments.rope_lookback import window_accuracy

RESULT = Path(__file__).resolve().parents[1] / "results" / "rope_lookback.json"


def test_window_accuracy_averages_each_window_ignoring_missing_targets():
    accuracy = torch.tensor([math.nan, math.nan, 1.0, 0.0, 0.5, 0.5, 0.25, 0.75])
    torch.testing.assert_close(window_accuracy(accuracy, 4), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="divisible by width=3"):
        window_accuracy(accuracy, 3)


def test_committed_study_has_three_seeds_or_more_in_the_toy_configuration():
    study = json.loads(RESULT.read_text())
    assert study["config"]["rope_base"] == 25.0 and study["config"]["seq_len"] == 64
    seeds = study["seeds"]
    assert len({s["seed"] for s in seeds}) == len(seeds) >= 3
    n_windows = study["config"]["test_len"] // study["config"]["window"]
    for s in seeds:
        assert len(s["windows"]) == n_windows
        assert all(0.0 <= a <= 1.0 for a in s["windows"])
        assert all(
            study["config"]["seq_len"] <= r < study["config"]["test_len"] for r in s["aliases"]
        )
    assert study["machine"]
