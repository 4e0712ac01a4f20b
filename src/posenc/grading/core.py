"""The machinery behind ``check(name, fn)``: cases, comparisons, hints, the one printed line.

An exercise is a function that returns a list of :class:`Case`. A case calls the learner's
function, compares what comes back with a truth the grader computes itself (or tests a
property such as "shuffling the tokens shuffles the outputs"), and raises :class:`Mismatch`
with a hint when something is off. When the values are wrong, the case compares them with
what each *classic mistake* of the exercise would have produced, so the hint can name it.

The tolerance rule (one rule for every numeric exercise)
--------------------------------------------------------
The truth ``t`` is computed in float64 (or exactly, for integers) from the same inputs,
independently of the library's float32 code. A float32 answer ``y`` passes when, element by
element,

    |y − t| ≤ allowed = SLACK · u · M,      u = 2⁻²⁴ (float32's unit roundoff),  SLACK = 32,

where ``M`` is the *magnitude of the computation*: the size of the quantities each rounding
touches. Every floating-point operation returns its exact result times (1 + δ) with |δ| ≤ u,
so a chain of k operations on quantities of size ≤ M is off by at most about k·u·M,
whatever the order of the operations. The exercises need:

* a rotation by an angle a (sinusoids, RoPE): computing θ = base^(−2i/d) costs about
  (2 + ln base)·u relative error (the rounded exponent is multiplied by ln base), the
  product m·θ one more u, so the angle is off by ≤ (3 + ln base)·u·|a| ≤ 17·u·|a| for
  base ≤ 10⁶; cos and sin pass that on unchanged and add an ulp each, and the multiply-add
  with x rounds twice: M = (1 + max|a|)·max|x|.
* a sum or matrix product of n terms: recursive summation is off by ≤ n·u·Σ|terms|
  (pairwise summation does better, never worse): M = n · max|a| · max|b|.
* softmax attention: an error δ in a score moves the output by at most about δ·max|v|, and
  the weighted sum of k_len values adds k_len·u·max|v|: M = max|v|·(1 + k_len + |score|-path
  of the line above).
* an output in a narrower dtype (bfloat16, float16) adds its own rounding, done at most four
  times on values no larger than the largest |y| (cast cos and sin, two products, one sum):
  OUTPUT_ROUNDINGS·u_out·max|y| with OUTPUT_ROUNDINGS = 4 (no slack on top: with
  u_out = 2⁻⁸ a slack of 32 would forgive an error of a quarter of |y|).

A correct implementation needs at most ~17 of the 32 units, so the slack of 32 leaves every
order of operations a factor of two to spare. The known precision mistakes break this bound
by orders of magnitude: an angle in bfloat16 (u = 2⁻⁸) or float16 (u = 2⁻¹¹) is off by
|a|·2⁻⁹ or |a|·2⁻¹² radians — 8 or 1 rad at a = 4000 — and positions cast to such a dtype
(or to float32 past 2²⁴) land on the wrong integer. A failure's hint says the measured
error, the allowed error and the likely cause.

Reference use
-------------
Each exercise declares what is off-limits (``Exercise.off_limits``: dotted names such as
``"posenc.rope.apply_rope"``; a class covers its methods, a module all of its code). While
the learner's function runs, a profile hook watches which code objects start and an audit
hook watches which files open: reaching an off-limits function (directly, under an alias,
through a wrapper), any grader module's code, the source file of an off-limits module, or a
notebook under ``solutions/`` (or switching the profile hook off) fails the exercise with a
hint that names what was reached.
The graders' own truths run outside that window, so they never trip it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import math
import os
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

PASS, FAIL = "✔", "✘"
GRADE_LOG_ENV = "POSENC_GRADE_LOG"  # where check() also appends its result (for `make grade`)
ATOL, RTOL = 1e-5, 1e-4  # for the few values compared with no magnitude model (properties)
SLACK = 32  # the tolerance rule: allowed = SLACK · u · M (see the module docstring)
OUTPUT_ROUNDINGS = 4  # a narrow output dtype adds ≤ 4 roundings of max|y|
UNIT_ROUNDOFF = {
    torch.float64: 2.0**-53,
    torch.float32: 2.0**-24,
    torch.float16: 2.0**-11,
    torch.bfloat16: 2.0**-8,
}
PRECISION_CAUSE = (
    "a step computed in lower precision than float32 (bfloat16/float16 angles or positions, "
    "or float32 positions past 2^24)"
)


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
    # Dotted names the learner's function must not reach (a function, a class: its methods,
    # or a module: all its code), e.g. ("posenc.rope.apply_rope", "posenc.rope.RotaryEmbedding").
    off_limits: tuple[str, ...] = ()


@dataclass
class CheckResult:
    """What ``check(..., raises=False)`` returns."""

    name: str
    passed: bool
    n_passed: int
    n_total: int
    hint: str = ""
    uses_reference: str = ""  # the off-limits name the function reached, if any

    def line(self) -> str:
        """The one stable line that check() prints."""
        if self.uses_reference:
            return f"{FAIL} {self.name}: {self.hint}"
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


def exercise(name: str, notebook: str, off_limits: tuple[str, ...] = ()):
    """Decorator: register a function that builds the cases of exercise ``name``;
    ``off_limits`` names what the learner's function must not reach (see the docstring)."""

    def register(make_cases: Callable[[], list[Case]]):
        if name in REGISTRY:
            raise RuntimeError(f"exercise {name!r} is registered twice")
        REGISTRY[name] = Exercise(name, notebook, make_cases, tuple(off_limits))
        return make_cases

    return register


# ----------------------------------------------------------------------------------------
# No credit for the reference: watch what runs while the learner's function runs
# ----------------------------------------------------------------------------------------

GRADING_DIR = Path(__file__).resolve().parent
# The watch of the learner's call now running in this thread, if any. Per thread, as
# sys.setprofile is: class grading runs several notebooks' cases at once, one per thread.
_local = threading.local()


def _nested_codes(code: types.CodeType):
    """A code object and every code object defined inside it (closures, lambdas)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _nested_codes(const)


def _codes_of(obj: Any):
    """The code objects that run when ``obj`` (a function, method, class) is used."""
    obj = inspect.unwrap(obj) if callable(obj) else obj
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        for f in (obj.fget, obj.fset):
            yield from _codes_of(f) if f is not None else ()
    elif isinstance(obj, functools.partial):
        yield from _codes_of(obj.func)
    elif isinstance(obj, type):
        for member in vars(obj).values():
            yield from _codes_of(member)
    elif hasattr(obj, "__code__"):
        yield from _nested_codes(obj.__code__)


def _resolve(dotted: str) -> Any:
    """Import the longest module prefix of ``dotted`` and walk the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


@functools.cache
def _off_limits_map(names: tuple[str, ...]) -> tuple[dict, dict, frozenset]:
    """(code object → dotted name, source file → dotted name, the names of whole modules)
    for ``names`` plus the grader modules, whose code is all off-limits. A name that no
    longer resolves is skipped (a test checks that every one resolves)."""
    codes: dict[types.CodeType, str] = {}
    files: dict[str, str] = {}

    def add_file(path: str, dotted: str) -> None:  # as imported (co_filename) and resolved
        for key in (path, str(Path(path).resolve())):
            files.setdefault(key, dotted)

    whole = {f"posenc.grading.{path.stem}" for path in GRADING_DIR.glob("nb*.py")}
    for path in GRADING_DIR.glob("nb*.py"):
        add_file(str(path), f"posenc.grading.{path.stem}")
        module = sys.modules.get(f"posenc.grading.{path.stem}")
        if module is not None:
            add_file(module.__file__, module.__name__)
    for dotted in names:
        try:
            obj = _resolve(dotted)
        except (ImportError, AttributeError):
            continue
        module = obj if isinstance(obj, types.ModuleType) else None
        if module is not None:
            whole.add(dotted)
        for code in _codes_of(obj) if module is None else ():
            codes.setdefault(code, dotted)
        module = module or sys.modules.get(getattr(obj, "__module__", "") or "")
        if module is not None and getattr(module, "__file__", None):
            add_file(module.__file__, dotted)
    return codes, files, frozenset(whole)


class ReferenceWatch:
    """Records the first off-limits thing reached while a guarded call runs.

    ``codes``: a profile hook sees every Python function that starts; one whose code object
    is off-limits, or that lives in a grader module (except callables the grader itself
    passed in), is a hit. ``files``: an audit hook sees every file opened; an off-limits
    module's source or a notebook under ``solutions/`` is a hit.
    """

    def __init__(self, off_limits: tuple[str, ...]):
        self.codes, self.files, self.whole = _off_limits_map(tuple(off_limits))
        self.allowed: set[types.CodeType] = set()
        self.hit, self.hit_name = "", ""
        self.armed = False  # True while the learner's code runs under the hook

    def _record(self, what: str, name: str) -> None:
        if not self.hit:
            self.hit, self.hit_name = what, name

    def _profile(self, frame, event, arg) -> None:
        if event != "call" or self.hit:
            return
        code = frame.f_code
        if code in self.allowed:
            return
        name = self.codes.get(code)
        if name is None and self.files.get(code.co_filename) in self.whole:
            name = self.files[code.co_filename]  # a grader module, or a module declared whole
        if name is not None:
            self._record(f"calls {name}, the answer itself", name)

    def opened(self, path: str) -> None:
        """Audit hook's report of a file opened during the guarded call."""
        resolved = Path(os.path.realpath(path))
        if resolved.parent.name == "solutions" and resolved.suffix == ".ipynb":
            answer = f"solutions/{resolved.name}"
            self._record(f"reads {answer}, the answer itself", answer)
        elif str(resolved) in self.files:
            name = self.files[str(resolved)]
            self._record(f"reads the source of {name}, the answer itself", name)

    def guard(self, fn: Callable) -> Callable:
        """``fn`` wrapped so that each call runs under the watch."""

        def guarded(*args: Any, **kwargs: Any) -> Any:
            for a in (*args, *kwargs.values()):  # helpers the grader hands in are allowed
                if callable(a) and not isinstance(a, torch.Tensor):
                    self.allowed.update(_codes_of(a))
            previous, outer = sys.getprofile(), getattr(_local, "active", None)
            _local.active = self
            sys.setprofile(self._profile)
            self.armed = True
            try:
                return fn(*args, **kwargs)
            finally:
                self.armed = False
                sys.setprofile(previous)
                _local.active = outer

        return guarded


def _audit(event: str, args: tuple) -> None:
    watch = getattr(_local, "active", None)
    if watch is None or watch.hit:
        return
    if event == "sys.setprofile" and watch.armed:  # the learner's code swaps out the hook
        watch._record("turns off the grader's watch (sys.setprofile)", "sys.setprofile")
    if event != "open":
        return
    path = args[0] if args else None
    if isinstance(path, (str, bytes, os.PathLike)):
        try:
            watch.opened(os.fsdecode(path))
        except (OSError, ValueError):
            pass


sys.addaudithook(_audit)


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
    watch = ReferenceWatch(REGISTRY[name].off_limits)
    guarded = watch.guard(fn)
    failures: list[Mismatch] = []
    for case in cases:
        if watch.hit:
            break  # no credit either way: stop here
        try:
            case.run(guarded)
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
    if watch.hit:
        hint = f"your function {watch.hit} — write it yourself"
        return CheckResult(name, False, 0, len(cases), hint, uses_reference=watch.hit_name)
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

    def diagnose_close(self, out: Any, allowed: Any) -> str | None:
        """The hint of the first mistake whose output ``out`` matches within ``allowed``."""
        for hint, make in self.makers.items():
            try:
                wrong = make()
            except Exception:  # a mistake that cannot happen at this size
                continue
            if (
                isinstance(wrong, torch.Tensor)
                and isinstance(out, torch.Tensor)
                and wrong.shape == out.shape
            ):
                err, tol = worst_error(out, wrong, allowed, equal_nan=True)
                if err <= tol:
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
    _expect_shape(out, expected, label)
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


# ----------------------------------------------------------------------------------------
# The tolerance rule (module docstring): compare with a float64 truth, allow SLACK · u · M
# ----------------------------------------------------------------------------------------


def allowed_error(magnitude: Any, dtype: torch.dtype = torch.float32) -> Any:
    """SLACK · u(dtype) · M: the error any correct ``dtype`` computation of magnitude M stays
    within, whatever its order of operations. ``magnitude`` may be a number or a tensor."""
    return SLACK * UNIT_ROUNDOFF[dtype] * magnitude


def output_rounding(largest: float, dtype: torch.dtype) -> float:
    """OUTPUT_ROUNDINGS · u(dtype) · max|y|: what returning ``dtype`` (bfloat16, float16) adds
    to ``allowed_error`` of the float32 computation (module docstring)."""
    return OUTPUT_ROUNDINGS * UNIT_ROUNDOFF[dtype] * largest


def worst_error(
    out: torch.Tensor, truth: torch.Tensor, allowed: Any, equal_nan: bool = False
) -> tuple[float, float]:
    """(error, allowed error) at the element where error / allowed is largest. Infinite
    truths (masks) must be matched exactly; NaN in ``out`` counts as an infinite error
    (unless ``equal_nan`` and the truth, a model of a mistake, is NaN there too)."""
    y, t = out.detach().double(), truth.detach().double()
    allowed = torch.as_tensor(allowed, dtype=torch.float64).expand_as(t)
    inf = torch.isinf(t)
    err = torch.where(inf, torch.where(y == t, 0.0, math.inf), (y - t).abs())
    both_nan = torch.isnan(y) & torch.isnan(t) if equal_nan else torch.zeros_like(inf)
    err = torch.where(both_nan, 0.0, torch.where(torch.isnan(err), math.inf, err))
    if err.numel() == 0:
        return 0.0, 0.0
    ratio = err / allowed.clamp(min=1e-300)
    worst = int(ratio.flatten().argmax())
    return float(err.flatten()[worst]), float(allowed.flatten()[worst])


def expect_close(
    out: Any,
    truth: torch.Tensor,
    label: str,
    allowed: Any,
    mistakes: Mistakes | None = None,
    *,
    dtype: torch.dtype | None = torch.float32,
    cause: str | None = None,
) -> None:
    """Raise Mismatch unless ``out`` is a ``dtype`` tensor (any dtype when None) of the
    truth's shape within ``allowed`` of the float64 ``truth``, element by element.

    A miss first looks for a known mistake; otherwise the hint gives the measured and the
    allowed error and the likely cause: ``cause`` when given, else a precision loss when the
    error is within 1000 × allowed (a formula mistake is usually far beyond), else a formula.
    """
    if not isinstance(out, torch.Tensor):
        raise Mismatch(f"{label}: returned {type(out).__name__}, expected a torch.Tensor")
    _expect_shape(out, truth, label)
    if dtype is not None and out.dtype != dtype:
        raise Mismatch(f"{label}: dtype {out.dtype}, expected {dtype}", specific=True)
    err, tol = worst_error(out, truth, allowed)
    if err <= tol:
        return
    if mistakes is not None:
        hint = mistakes.diagnose_close(out, allowed)
        if hint is not None:
            raise Mismatch(hint, specific=True)
    y = out.detach()
    if torch.isnan(y).any() or (torch.isinf(y) & ~torch.isinf(truth)).any():
        raise Mismatch(f"{label}: the output holds NaN or inf values", specific=True)
    if cause is None:
        cause = PRECISION_CAUSE if err <= 1000 * tol else "the formula differs from the exercise's"
    raise Mismatch(
        f"{label}: max error {err:.3g} against the float64 truth, allowed {tol:.3g} — "
        f"likely cause: {cause}",
        specific=cause is not None and err <= 1000 * tol,
    )


def attention64(q, k, v, *, causal=False, bias=None) -> torch.Tensor:
    """softmax(q kᵀ/√d + bias) v in float64; causal queries are the last q_len positions."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (..., q_len, k_len)
    if bias is not None:
        scores = scores + bias.double()
    if causal:
        q_len, k_len = scores.shape[-2:]
        future = torch.arange(k_len)[None, :] > torch.arange(q_len)[:, None] + (k_len - q_len)
        scores = scores.masked_fill(future, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_allowed(q, k, v, *, bias_size=0.0, angle=0.0, width=0) -> float:
    """The rule for softmax attention: a score error δ moves the output by ≤ δ·max|v|, and the
    weighted sum of k_len values adds k_len·u·max|v|. A score q·k/√d of d terms is off by
    ≤ d·u·max|q|·max|k|/√d, times (1 + the largest angle) when q and k were rotated first,
    times (1 + width) when q, k and v were first projected from ``width`` features."""
    big = [t.detach().double().abs().max().item() for t in (q, k, v)]
    d, k_len = q.shape[-1], k.shape[-2]
    score = d * big[0] * big[1] / math.sqrt(d) * (1 + angle + width) + bias_size
    return allowed_error(big[2] * (1 + k_len + width + score))


def _expect_shape(out: torch.Tensor, expected: torch.Tensor, label: str) -> None:
    if out.shape == expected.shape:
        return
    shape, want = tuple(out.shape), tuple(expected.shape)
    if out.ndim >= 2 and out.transpose(-1, -2).shape == expected.shape:
        raise Mismatch(
            f"{label}: shape {shape} is the transpose of the expected {want} "
            "— the last two axes are swapped",
            specific=True,
        )
    raise Mismatch(f"{label}: shape {shape}, expected {want}", specific=True)
