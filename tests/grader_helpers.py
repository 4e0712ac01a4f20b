"""Assertions shared by the grader tests."""

from __future__ import annotations

from posenc.grading import run_cases


def assert_rejected(name: str, fn, hint_contains: str | None) -> None:
    """The grader must fail ``fn``; when ``hint_contains`` is given the hint must name it."""
    result = run_cases(name, fn)
    assert not result.passed, f"grader {name!r} passed a wrong implementation: {fn.__doc__}"
    assert result.n_passed < result.n_total
    assert result.hint, "a failure needs a hint"
    if hint_contains is not None:
        assert hint_contains in result.hint, f"{fn.__doc__}: hint was {result.hint!r}"


def assert_accepted(name: str, fn, minimum: int = 5) -> None:
    """A right answer passes every case, and the grader runs at least ``minimum`` cases."""
    result = run_cases(name, fn)
    assert result.passed, f"{name}: a correct answer failed: {result.hint}"
    assert result.n_passed == result.n_total >= minimum
