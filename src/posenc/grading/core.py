"""The machinery behind ``check(name, fn)``: cases, comparisons, hints, the one printed line.

An exercise is a function that returns a list of :class:`Case`. A case calls the learner's
function, compares what comes back with the reference in ``src/posenc`` (or tests a property
such as "shuffling the tokens shuffles the outputs"), and raises :class:`Mismatch` with a hint
when something is off. When the values are wrong, the case compares them with what each
*classic mistake* of the exercise would have produced, so the hint can name the mistake.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

PASS, FAIL = "✔", "✘"
GRADE_LOG_ENV = "POSENC_GRADE_LOG"  # where check() also appends its result (for `make grade`)
ATOL, RTOL = 1e-5, 1e-4  # float32 tolerance for values that pass through softmax or trig


class Mismatch(Exception):
    """One case failed. ``specific`` is True when the hint names a known mistake."""

    def __init__(self, hint: str, *, specific: bool = False):
        super().__init__(hint)
        self.hint = hint
        self.specific = specific


@dataclass(frozen=True)
class Case:
    """One check: ``run(fn)`` returns normally when ``fn`` passes, raises Mismatch otherwise."""

    label: str
    run: Callable[[Callable], None]


@dataclass
class Exercise:
    name: str
    notebook: str  # stem of the notebook that asks for it, e.g. "00_attention_has_no_order"
    make_cases: Callable[[], list[Case]]
    off_limits: tuple[str, ...] = ()


@dataclass
class CheckResult:
    """What ``check(..., raises=False)`` returns."""

    name: str
    passed: bool
    n_passed: int
    n_total: int
    hint: str = ""

    def line(self) -> str:
        """The one stable line that check() prints."""
        if self.passed:
            return f"{PASS} {self.name}: {self.n_passed}/{self.n_total} checks passed"
        return f"{FAIL} {self.name}: {self.n_passed}/{self.n_total} checks passed — {self.hint}"


class CheckFailed(AssertionError):
    """Raised by check() when an exercise fails. Jupyter shows it as the one ✘ line."""

    def __init__(self, result: CheckResult):
        super().__init__(result.line())
        self.result = result

    def _render_traceback_(self) -> list[str]:  # IPython: show this instead of a traceback
        return [self.result.line()]


REGISTRY: dict[str, Exercise] = {}


def exercise(name: str, notebook: str):
    """Decorator: register a function that builds the cases of exercise ``name``."""

    def register(make_cases: Callable[[], list[Case]]):
        if name in REGISTRY:
            raise RuntimeError(f"exercise {name!r} is registered twice")
        REGISTRY[name] = Exercise(name, notebook, make_cases)
        return make_cases

    return register


def _describe_exception(err: BaseException) -> Mismatch:
    if isinstance(err, NotImplementedError):
        return Mismatch(
            "NotImplementedError: not done yet — replace `raise NotImplementedError()` "
            "with your code",
            specific=True,
        )
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if len(message) > 120:
        message = message[:117] + "..."
    return Mismatch(f"your function raised {type(err).__name__}: {message}", specific=True)


def run_cases(name: str, fn: Callable) -> CheckResult:
    """Run every case of exercise ``name`` against ``fn``; never raises for a wrong ``fn``."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise KeyError(f"unknown exercise {name!r}; known exercises: {known}")
    if not callable(fn):
        return CheckResult(name, False, 0, 1, f"expected a function, got {type(fn).__name__}")
    cases = REGISTRY[name].make_cases()
    failures: list[Mismatch] = []
    for case in cases:
        try:
            case.run(fn)
        except Mismatch as mismatch:
            failures.append(mismatch)
        except Exception as err:  # the output broke the comparison itself (e.g. not a tensor)
            message = (str(err).strip().splitlines() or [""])[0][:120]
            failures.append(
                Mismatch(
                    f"{case.label}: your output could not be checked "
                    f"({type(err).__name__}: {message})"
                )
            )
    n_passed = len(cases) - len(failures)
    if not failures:
        return CheckResult(name, True, n_passed, len(cases))
    # Prefer a hint that names a mistake over a generic "values differ".
    best = next((f for f in failures if f.specific), failures[0])
    return CheckResult(name, False, n_passed, len(cases), best.hint)


_log_path: str | None = None


def _grade_log_path() -> str | None:
    """The grader's log file. The variable is taken out of the environment the first time it
    is seen, so that code in the graded notebook cannot read where the log is."""
    global _log_path
    if GRADE_LOG_ENV in os.environ:
        _log_path = os.environ.pop(GRADE_LOG_ENV) or None
    return _log_path


_grade_log_path()  # at import: the notebook's first cell imports check before any answer runs


def log_result(result: CheckResult) -> None:
    """Append the result to the grader's log file, when a grader set one."""
    path = _grade_log_path()
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")


def check(name: str, fn: Callable, *, raises: bool = True) -> CheckResult | None:
    """Grade ``fn`` as the answer to exercise ``name``.

    Prints one line, ``✔ name: K/K checks passed`` or ``✘ name: k/K checks passed — hint``,
    and raises :class:`CheckFailed` on failure. With ``raises=False`` it prints nothing and
    returns the :class:`CheckResult` instead.
    """
    result = run_cases(name, fn)
    if not raises:
        return result
    log_result(result)
    print(result.line())
    if not result.passed:
        raise CheckFailed(result)
    return None


# ----------------------------------------------------------------------------------------
# Helpers the exercise modules share
# ----------------------------------------------------------------------------------------


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=generator(seed), dtype=dtype)


def call(fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Call the learner's ``fn`` on clones of tensor arguments (so it cannot change the
    grader's inputs); an exception inside it becomes a Mismatch that names it."""
    cloned = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        return fn(*cloned, **kwargs)
    except Exception as err:
        raise _describe_exception(err) from err


def close(
    a: Any, b: torch.Tensor, atol: float = ATOL, rtol: float = RTOL, equal_nan: bool = False
) -> bool:
    """True when ``a`` is a tensor of ``b``'s shape with values within tolerance."""
    if not isinstance(a, torch.Tensor) or a.shape != b.shape:
        return False
    a64, b64 = a.detach().to(torch.float64), b.detach().to(torch.float64)
    return bool(torch.allclose(a64, b64, atol=atol, rtol=rtol, equal_nan=equal_nan))


@dataclass
class Mistakes:
    """Known wrong outputs for one case, keyed by the hint that names the mistake.

    Each value is a zero-argument function, evaluated only when the answer is wrong.
    """

    makers: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def diagnose(self, out: Any, atol: float = ATOL, rtol: float = RTOL) -> str | None:
        for hint, make in self.makers.items():
            try:
                wrong = make()
            except Exception:  # a mistake that cannot happen at this size
                continue
            if isinstance(wrong, torch.Tensor) and close(out, wrong, atol, rtol, equal_nan=True):
                return hint
        return None


def expect_tensor(
    out: Any,
    expected: torch.Tensor,
    label: str,
    mistakes: Mistakes | None = None,
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
    check_dtype: bool = True,
) -> None:
    """Raise Mismatch unless ``out`` equals ``expected`` in type, shape, dtype and values."""
    if not isinstance(out, torch.Tensor):
        raise Mismatch(f"{label}: returned {type(out).__name__}, expected a torch.Tensor")
    if out.shape != expected.shape:
        shape, want = tuple(out.shape), tuple(expected.shape)
        if out.ndim >= 2 and out.transpose(-1, -2).shape == expected.shape:
            raise Mismatch(
                f"{label}: shape {shape} is the transpose of the expected {want} "
                "— the last two axes are swapped",
                specific=True,
            )
        raise Mismatch(f"{label}: shape {shape}, expected {want}", specific=True)
    if check_dtype and out.dtype != expected.dtype:
        raise Mismatch(
            f"{label}: dtype {out.dtype}, expected {expected.dtype}",
            specific=True,
        )
    if close(out, expected, atol, rtol):
        return
    if mistakes is not None:
        hint = mistakes.diagnose(out, atol, rtol)
        if hint is not None:
            raise Mismatch(hint, specific=True)
    if not torch.isfinite(out.detach()).all() and torch.isfinite(expected).all():
        raise Mismatch(f"{label}: the output holds NaN or inf values", specific=True)
    err = (out.detach().double() - expected.double()).abs().max().item()
    raise Mismatch(f"{label}: values differ from the reference (max abs error {err:.3g})")


def expect_number(
    out: Any,
    expected: float,
    label: str,
    wrong: dict[str, float] | None = None,
    *,
    rel_tol: float = 1e-6,
    abs_tol: float = 0.0,
    what: str = "returned",
) -> None:
    """Raise Mismatch unless ``out`` is a number close to ``expected``; when it equals what a
    known mistake gives (``wrong``: hint → value), the hint names that mistake."""
    value = as_float(out, label)
    if math.isclose(value, expected, rel_tol=rel_tol, abs_tol=abs_tol):
        return
    for hint, mistaken in (wrong or {}).items():
        if math.isclose(mistaken, expected, rel_tol=rel_tol, abs_tol=abs_tol):
            continue  # this mistake gives the right value here: it cannot be the cause
        if math.isclose(value, mistaken, rel_tol=rel_tol, abs_tol=abs_tol):
            raise Mismatch(hint, specific=True)
    raise Mismatch(f"{label}: {what} {value:.6g}, expected {expected:.6g}")


def as_float(out: Any, label: str) -> float:
    """Accept a Python number or a one-element tensor; anything else is a Mismatch."""
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise Mismatch(
                f"{label}: returned a tensor of shape {tuple(out.shape)}; "
                "reduce it to a single number",
                specific=True,
            )
        return float(out.item())
    if isinstance(out, (int, float)) and not isinstance(out, bool):
        return float(out)
    raise Mismatch(f"{label}: returned {type(out).__name__}, expected a number")
