"""Assertions shared by the grader tests."""

from __future__ import annotations

import types
from types import SimpleNamespace

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


def unwatched_copy(module) -> SimpleNamespace:
    """The functions of a grader module, recompiled under another file name.

    Grader code is off-limits to a learner's function, so a wrong answer built on a grader's
    mistake model would be failed for using the reference instead of for its mistake. Tests
    that need the mistake models use this copy, which the reference watch does not know."""

    def recode(code: types.CodeType) -> types.CodeType:
        consts = tuple(recode(c) if isinstance(c, types.CodeType) else c for c in code.co_consts)
        return code.replace(co_filename=f"<test copy of {module.__name__}>", co_consts=consts)

    namespace = dict(vars(module))
    for name, value in vars(module).items():
        if isinstance(value, types.FunctionType) and value.__module__ == module.__name__:
            copy = types.FunctionType(
                recode(value.__code__), namespace, name, value.__defaults__, value.__closure__
            )
            copy.__kwdefaults__ = value.__kwdefaults__
            namespace[name] = copy
    return SimpleNamespace(**namespace)
