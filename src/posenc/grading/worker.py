"""The student's side of class grading: run a notebook's cells, then answer calls as plain data.

    python -m posenc.grading.worker CONTROL_FD [--jailed]

runs as a *template* (normally inside the jail, see :mod:`posenc.grading.jail`): it imports
the slow libraries once, then, for each notebook, receives a socket on CONTROL_FD and forks a
child that owns that socket. The child (one per notebook, used once) receives the cells,
executes them in order in one namespace, and at each check cell tells the grader that the
exercise's function is ready and answers its calls until the grader says "next"::

    grader → child   {"cells": [...], "checks": {cell id: [exercise, expression]}, ...}
    child → grader   {"event": "cell", "index": i}          before every cell
    child → grader   {"event": "check", "name": ..., "error": ""}
    grader → child   {"op": "call", "args": [...], "kwargs": {...}}  (or {"op": "next"})
    child → grader   {"return": value} | {"raised": {"type", "message"}} | {"timeout": true}
    child → grader   {"event": "callback", "id": k, "args": ..., "kwargs": ...}  (a function
                     argument the grader kept, called by the student's code; answered with
                     {"return": ...} or {"raised": ...})
    child → grader   {"event": "done", "cells": [{"index", "error"}, ...]}

This module never imports the graders; the posenc it sees is the jail's copy, in which the
reference answers to the notebook's exercises are replaced by stand-ins that raise
``ReferenceHidden`` (see :func:`posenc.grading.jail.build_view`).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import sys
from typing import Any

from posenc.grading import wire
from posenc.grading.text import shorten

PRELOAD = (  # slow to import; what the course notebooks import
    "torch",
    "torch._dynamo",
    "numpy",
    "matplotlib.pyplot",
    "ipywidgets",
    "tqdm.auto",
    "IPython.display",
    "posenc",
    "posenc.attention",
    "posenc.course.viz",
    "posenc.experiments.toy_tasks",
)
WORK_DIR, SCRATCH = "/work/nb", "/tmp"  # inside the jail: wiped between notebooks


class CellTimeout(BaseException):
    """Raised in the student's code when a cell or a call runs past its time limit."""


def _on_alarm(*_: Any) -> None:
    raise CellTimeout()


@contextlib.contextmanager
def time_limit(seconds: float):
    """Interrupt the code in the block after ``seconds`` (a sleep or a busy Python loop)."""
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


# --- the template ----------------------------------------------------------------------------


def serve_template(control_fd: int, jailed: bool) -> None:
    """Import the course's libraries, then fork one child per notebook until told to stop."""
    import importlib

    os.environ.setdefault("MPLBACKEND", "Agg")
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    _not_dumpable()  # a child cannot ptrace the template or read its memory
    control = socket.socket(fileno=control_fd)
    wire.send(control, {"ready": True})
    child = 0
    while True:
        kind, fds, _, _ = socket.recv_fds(control, 1, 1)
        if not kind:
            return  # the grader closed the control socket
        request = wire.receive(control, None)
        if request.get("op") == "run" and fds:
            child = os.fork()
            if child == 0:
                control.close()
                _run_child(fds[0], request)
            os.close(fds[0])
            wire.send(control, {"pid": child})
        elif request.get("op") == "reset":
            _reset(child, jailed)
            wire.send(control, {"ok": True})


def _not_dumpable() -> None:
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4


def _reset(child: int, jailed: bool) -> None:
    """Kill what the last notebook started and wipe the folders it could write."""
    for target in (-1,) if jailed and os.getpid() < 10 else (-child,) if child > 0 else ():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)  # in the jail's PID namespace: all but us and init
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    if jailed:
        for folder in (WORK_DIR, SCRATCH):
            _empty(folder)


def _empty(folder: str) -> None:
    for entry in os.listdir(folder) if os.path.isdir(folder) else ():
        path = os.path.join(folder, entry)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, onerror=lambda f, p, e: (os.chmod(p, 0o700), f(p)))
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


# --- one notebook ----------------------------------------------------------------------------


def _run_child(fd: int, request: dict[str, Any]) -> None:
    """In the forked child: limits, a fresh folder, then the notebook. Never returns."""
    code = 0
    try:
        os.setsid()
        _apply_limits(request.get("limits", {}))
        os.makedirs(request.get("cwd", WORK_DIR), exist_ok=True)
        os.chdir(request.get("cwd", WORK_DIR))
        threads = int(request.get("threads", 0))
        if threads:
            import torch

            torch.set_num_threads(threads)
        Notebook(socket.socket(fileno=fd)).run()
    except BaseException:  # noqa: BLE001 (the grader sees the socket close)
        code = 1
    finally:
        os._exit(code)


def _apply_limits(limits: dict[str, int]) -> None:
    table = {
        "memory_bytes": resource.RLIMIT_AS,
        "cpu_seconds": resource.RLIMIT_CPU,
        "file_bytes": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
        "processes": resource.RLIMIT_NPROC,
    }
    for key, value in limits.items():
        resource.setrlimit(table[key], (int(value), int(value)))


class Notebook:
    """One notebook's namespace and the conversation with the grader about it."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.namespace: dict[str, Any] = {"__name__": "__main__"}
        job = wire.receive(conn, 60)
        self.cells: list[str] = [str(s) for s in job["cells"]]
        self.checks: dict[str, list[str]] = job["checks"]
        self.skip = set(job.get("skip", ()))
        self.timeout = float(job["timeout_cell"])
        self.fn: Any = None

    def run(self) -> None:
        errors = []
        for index, source in enumerate(self.cells):
            if index in self.skip:
                continue
            wire.send(self.conn, {"event": "cell", "index": index})
            if str(index) in self.checks:
                self._check(*self.checks[str(index)])
            else:
                errors.append({"index": index, "error": self._execute(source)})
        wire.send(self.conn, {"event": "done", "cells": [e for e in errors if e["error"]]})

    def _execute(self, source: str) -> str:
        """Run one cell; '' or what went wrong ('timeout' when it ran past its limit)."""
        try:
            with time_limit(self.timeout):
                exec(compile(source, "<cell>", "exec"), self.namespace)  # noqa: S102
        except CellTimeout:
            return "timeout"
        except BaseException as err:  # noqa: BLE001 (SystemExit too: the notebook goes on)
            parts = wire.exception_parts(err)
            return f"{parts['type']}: {shorten(parts['message'], 200)}"
        return ""

    def _check(self, name: str, expression: str) -> None:
        """Tell the grader the exercise's function is ready, then answer its calls."""
        try:
            with time_limit(self.timeout):
                self.fn = eval(expression, self.namespace)  # noqa: S307 (the canonical cell's)
            error = "" if callable(self.fn) else f"{expression} is not a function"
        except BaseException as err:  # noqa: BLE001
            error = f"{type(err).__name__}: {shorten(str(err), 200)}"
        wire.send(self.conn, {"event": "check", "name": name, "error": error})
        while True:
            request = wire.receive(self.conn, None)
            if request.get("op") != "call":
                return
            wire.send(self.conn, self._call(request))

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        hidden = _hidden_log()
        hidden.clear()
        try:
            args = wire.decode(request["args"], self._callback)
            kwargs = wire.decode(request["kwargs"], self._callback)
            with time_limit(self.timeout):
                result = self.fn(*args, **kwargs)
            reply: dict[str, Any] = {"return": wire.encode(result)}
        except CellTimeout:
            reply = {"timeout": True}
        except Exception as err:  # noqa: BLE001
            reply = {"raised": wire.exception_parts(err)}
        if hidden:
            reply["reference"] = sorted(set(hidden))[:8]
        return reply

    def _callback(self, ident: int):
        """The stand-in for a function argument the grader kept: calls cross back to it."""

        def call_grader(*args: Any, **kwargs: Any) -> Any:
            message = {"event": "callback", "id": ident}
            message.update(args=wire.encode(args), kwargs=wire.encode(kwargs))
            wire.send(self.conn, message)
            reply = wire.receive(self.conn, None)
            if "raised" in reply:
                raise RuntimeError(f"the grader's function raised {reply['raised']}")
            return wire.decode(reply.get("return"))

        return call_grader


def _hidden_log() -> list[str]:
    """The names of hidden references the student's code reached (see jail.build_view)."""
    try:
        from posenc import _hidden
    except ImportError:
        return []
    return _hidden.USED


def main(argv: list[str]) -> None:
    serve_template(int(argv[0]), "--jailed" in argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
