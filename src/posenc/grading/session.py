"""The grader's side of one notebook: drive a worker (see :mod:`posenc.grading.worker`) through
the notebook and grade each exercise *here*, with the graders' own cases and comparisons.

The student's function is reached through a :class:`Proxy`: each call sends the arguments as
plain data and gets back plain data (a value, or an exception's type name and message), so
nothing the student's code does in its own process can change how the grader compares.

A cell that outlives its limit (its alarm ignored, or stuck in C code) or that kills its
process costs that cell only: the worker is restarted and the notebook run again without that
cell, skipping the exercises already graded. After ``MAX_RESTARTS`` the rest are errors.
"""

from __future__ import annotations

import builtins
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from posenc.grading import wire
from posenc.grading.core import run_cases
from posenc.grading.text import students_text

GRACE = 3.0  # seconds the worker gets beyond a limit to report it before it is killed
MAX_RESTARTS = 3
USES_REFERENCE = "uses reference"  # the hint (and flag) when a hidden reference was reached
_BUILTIN_ERRORS = {
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), Exception)
}


class WorkerGone(BaseException):
    """The worker stopped answering, closed the connection or sent malformed data."""


class WorkerHung(BaseException):
    """The worker said nothing for longer than the time limit allows."""


class CallTimedOut(BaseException):
    """A call to the student's function ran past the cell time limit."""


@dataclass
class Verdict:
    exercise: str
    status: str  # passed | failed | not attempted | error | timeout
    hint: str = ""
    n_passed: int = 0
    n_total: int = 0


@dataclass
class Run:
    """What one notebook's run produced."""

    verdicts: dict[str, Verdict] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # cell index → why it was dropped


def student_exception(parts: Any) -> Exception:
    """An exception standing for the student's: same type name, derived from the same built-in
    exception, the message labelled as the student's."""
    if not isinstance(parts, dict):
        raise WorkerGone("a malformed exception")
    name, base = str(parts.get("type", "Exception")), str(parts.get("builtin", "Exception"))
    base_cls = getattr(builtins, base) if base in _BUILTIN_ERRORS else Exception
    cls = base_cls if name == base else type(name[:80], (base_cls,), {"__module__": "student"})
    if issubclass(cls, NotImplementedError):
        return cls()
    return cls(students_text(str(parts.get("message", ""))))


class Proxy:
    """The student's function, as the graders see it: a call crosses as plain data."""

    def __init__(self, conn: socket.socket, timeout: float) -> None:
        self.conn, self.timeout = conn, timeout
        self.references: set[str] = set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        callbacks: dict[int, Callable] = {}
        message = {"op": "call", "args": wire.encode(list(args), callbacks)}
        message["kwargs"] = wire.encode(kwargs, callbacks)
        _send(self.conn, message)
        while True:
            reply = _receive(self.conn, self.timeout + GRACE)
            if reply.get("event") == "callback":
                _send(self.conn, self._run_callback(callbacks, reply))
                continue
            self.references.update(str(r)[:80] for r in reply.get("reference") or ())
            if "return" in reply:
                try:
                    return wire.decode(reply["return"])
                except wire.WireError as err:
                    raise TypeError(f"returned a value that cannot be checked ({err})") from None
            if "raised" in reply:
                raise student_exception(reply["raised"])
            if reply.get("timeout") is True:
                raise CallTimedOut()
            raise WorkerGone("an unexpected reply")

    @staticmethod
    def _run_callback(callbacks: dict[int, Callable], request: dict[str, Any]) -> dict[str, Any]:
        """Run a function argument the grader kept (e.g. ``attn_fn``) on the student's data."""
        try:
            fn = callbacks[request["id"]]
            args, kwargs = wire.decode(request["args"]), wire.decode(request["kwargs"])
            return {"return": wire.encode(fn(*args, **kwargs))}
        except Exception as err:  # noqa: BLE001 (the student's data broke the helper)
            return {"raised": wire.exception_parts(err)}


def _send(conn: socket.socket, message: Any) -> None:
    try:
        wire.send(conn, message)
    except OSError as err:
        raise WorkerGone(f"the worker closed the connection ({type(err).__name__})") from None


def _receive(conn: socket.socket, timeout: float) -> dict[str, Any]:
    try:
        message = wire.receive(conn, max(timeout, 0.1))
    except TimeoutError:
        raise WorkerHung() from None
    except (OSError, EOFError, wire.WireError) as err:
        raise WorkerGone(f"the worker stopped ({type(err).__name__})") from None
    if not isinstance(message, dict):
        raise WorkerGone("the worker sent something that is not a message")
    return message


def grade_exercise(conn: socket.socket, name: str, error: Any, timeout: float) -> Verdict:
    """Grade exercise ``name`` through the worker, whose function is ready (or not: ``error``)."""
    if error:
        return Verdict(name, "error", f"the function could not be found: {students_text(error)}")
    proxy = Proxy(conn, timeout)
    try:
        result = run_cases(name, proxy)
    except CallTimedOut:
        return Verdict(name, "timeout", f"a call ran past the {timeout:g} s limit")
    if proxy.references:
        used = ", ".join(sorted(proxy.references))
        return Verdict(name, "failed", f"{USES_REFERENCE}: {used}", 0, result.n_total)
    if result.passed:
        return Verdict(name, "passed", "", result.n_passed, result.n_total)
    status = "not attempted" if result.hint.startswith("NotImplementedError") else "failed"
    return Verdict(name, status, result.hint, result.n_passed, result.n_total)


@dataclass
class Job:
    """One notebook to run: its code cells, its check cells (index → exercise, expression)."""

    cells: list[str]
    checks: dict[int, tuple[str, str]]
    timeout_cell: float
    timeout_notebook: float


def run_notebook(job: Job, start: Callable[[], socket.socket], stop: Callable[[], None]) -> Run:
    """Run ``job`` through workers from ``start()``; ``stop()`` ends the current one."""
    run, deadline = Run(), time.monotonic() + job.timeout_notebook
    for _attempt in range(MAX_RESTARTS + 1):
        if time.monotonic() >= deadline:
            break
        progress = [-1]  # the cell the worker last said it started
        try:
            with start() as conn:
                _send(conn, _job_message(job, run))
                _converse(conn, job, run, deadline, progress)
            stop()
            return _finish(job, run, deadline)
        except (WorkerGone, WorkerHung) as err:
            stop()
            _drop_cell(job, run, progress[0], "timeout" if isinstance(err, WorkerHung) else "")
    return _finish(job, run, deadline)


def _job_message(job: Job, run: Run) -> dict[str, Any]:
    graded = {i for i, (name, _) in job.checks.items() if name in run.verdicts}
    checks = {str(i): list(c) for i, c in job.checks.items() if i not in graded}
    skip = sorted(graded | set(run.skipped))
    return {"cells": job.cells, "checks": checks, "skip": skip, "timeout_cell": job.timeout_cell}


def _converse(
    conn: socket.socket, job: Job, run: Run, deadline: float, progress: list[int]
) -> None:
    """Follow the worker through the notebook, grading each exercise as its check comes."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise WorkerHung()
        message = _receive(conn, min(job.timeout_cell + GRACE, left))
        event = message.get("event")
        if event == "cell" and message.get("index") in range(len(job.cells)):
            progress[0] = message["index"]
        elif event == "check" and job.checks.get(progress[0], ("",))[0] == message.get("name"):
            name = job.checks[progress[0]][0]
            error = message.get("error")
            run.verdicts[name] = grade_exercise(conn, name, error, job.timeout_cell)
            _send(conn, {"op": "next"})
        elif event == "done":
            return
        else:
            raise WorkerGone("a message out of turn")


def _drop_cell(job: Job, run: Run, index: int, why: str) -> None:
    """The worker hung or died in cell ``index``: grade the rest of the notebook without it."""
    why = why or "the cell ended its process"
    if index in job.checks:
        name = job.checks[index][0]
        status = "timeout" if why == "timeout" else "error"
        run.verdicts.setdefault(name, Verdict(name, status, f"the check stopped: {why}"))
    run.skipped[index] = why


def _finish(job: Job, run: Run, deadline: float) -> Run:
    """Every exercise of the notebook gets a verdict, those never reached included."""
    late = time.monotonic() >= deadline
    for name, _ in job.checks.values():
        if name not in run.verdicts:
            why = "the notebook ran past its time limit" if late else "the check never ran"
            run.verdicts[name] = Verdict(name, "timeout" if late else "error", why)
    for index, why in sorted(run.skipped.items()):
        if index >= 0:
            run.flags.append(f"cell {index} skipped on a rerun ({why})")
    return run
