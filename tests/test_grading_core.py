"""check(): one stable line, an error on failure, hints for exceptions, shapes and dtypes."""

import json

import pytest
import torch

from posenc.grading import EXERCISES, CheckFailed, check
from posenc.grading.core import GRADE_LOG_ENV, Mismatch, expect_tensor


def self_attention(x, w_q, w_k, w_v, causal=False):
    """A learner's right answer (the library's own would earn no credit)."""
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if causal:
        seq = x.shape[-2]
        future = torch.ones(seq, seq, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def test_pass_prints_exactly_one_line(capsys):
    assert check("self_attention", self_attention) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("✔ self_attention: ") and out.rstrip().endswith("checks passed")
    k, total = out.split(": ")[1].split(" ")[0].split("/")
    assert k == total and int(total) >= 5


def test_failure_prints_one_line_and_raises(capsys):
    def lazy(x, w_q, w_k, w_v, causal=False):
        raise NotImplementedError()

    with pytest.raises(CheckFailed) as err:
        check("self_attention", lazy)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("✘ self_attention: 0/")
    assert "NotImplementedError" in out
    # Jupyter renders the error as that single line, not a traceback.
    assert err.value._render_traceback_() == [out.rstrip("\n")]


def test_raises_false_returns_result_and_prints_nothing(capsys):
    result = check("self_attention", lambda *a, **k: 1 / 0, raises=False)
    assert capsys.readouterr().out == ""
    assert not result.passed and result.n_passed == 0 and result.n_total > 0
    assert "ZeroDivisionError" in result.hint


def test_unknown_name_lists_the_known_exercises():
    with pytest.raises(KeyError) as err:
        check("sinusoidal_encodin", self_attention)
    assert "self_attention" in str(err.value)


def test_exercises_map_names_to_existing_notebooks():
    from conftest import SOLUTIONS

    stems = {p.stem for p in SOLUTIONS.glob("*.ipynb")}
    assert EXERCISES and set(EXERCISES.values()) <= stems


def test_not_callable_is_a_failure_not_a_crash():
    result = check("self_attention", 42, raises=False)
    assert not result.passed and "function" in result.hint


@pytest.mark.parametrize(
    "out, needle",
    [
        ([1.0, 2.0], "expected a torch.Tensor"),
        (torch.zeros(3, 2), "transpose"),
        (torch.zeros(5), "shape (5,)"),
        (torch.zeros(2, 3, dtype=torch.float16), "dtype torch.float16"),
        (torch.full((2, 3), float("nan")), "NaN"),
        (torch.ones(2, 3), "values differ"),
    ],
)
def test_expect_tensor_names_what_is_wrong(out, needle):
    with pytest.raises(Mismatch) as err:
        expect_tensor(out, torch.zeros(2, 3), "case")
    assert needle in err.value.hint


def test_grade_log_records_each_check(tmp_path, monkeypatch, capsys):
    import os

    from posenc.grading import core

    monkeypatch.setattr(core, "_log_path", None)  # restored after the test
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv(GRADE_LOG_ENV, str(log))
    check("self_attention", self_attention)
    with pytest.raises(CheckFailed):
        check("self_attention", lambda *a, **k: None)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["passed"] for e in entries] == [True, False]
    assert GRADE_LOG_ENV not in os.environ, "the log's path is hidden from the graded code"
    assert entries[1]["hint"]


def test_tolerance_rule_is_slack_times_unit_roundoff_times_magnitude():
    from posenc.grading.core import SLACK, allowed_error

    assert allowed_error(1000.0) == SLACK * 2.0**-24 * 1000.0
    assert allowed_error(2.0, torch.bfloat16) == SLACK * 2.0**-8 * 2.0


def test_expect_close_judges_against_the_truth_and_explains_a_miss():
    from posenc.grading.core import expect_close

    truth = torch.tensor([1.0, float("-inf"), 3.0], dtype=torch.float64)
    expect_close(torch.tensor([1.0 + 1e-7, float("-inf"), 3.0]), truth, "x", allowed=1e-6)
    with pytest.raises(Mismatch) as err:  # a finite value where the truth is masked
        expect_close(torch.tensor([1.0, -1e9, 3.0]), truth, "x", allowed=1e-6)
    assert "max error inf" in err.value.hint
    with pytest.raises(Mismatch) as err:
        expect_close(torch.tensor([1.001, float("-inf"), 3.0]), truth, "x", allowed=1e-5)
    hint = err.value.hint
    assert "max error 0.001" in hint and "allowed 1e-05" in hint and "likely cause" in hint
    with pytest.raises(Mismatch) as err:
        expect_close(torch.tensor([float("nan"), float("-inf"), 3.0]), truth, "x", allowed=1.0)
    assert "NaN or inf" in err.value.hint
