"""One thread-count setting for class grading: notebooks graded at once share the cores.

Also the one lock that grading threads take to parse Python source."""

from __future__ import annotations

import ast
import os
import threading

_PARSE_LOCK = threading.Lock()


def parse_python(source: str) -> ast.Module:
    """``ast.parse``, one thread at a time.  CPython 3.11 keeps the depth counter that builds
    ast objects in state shared by threads; two threads parsing at once can fail with
    "SystemError: AST constructor recursion depth mismatch" (cpython issue gh-106905)."""
    with _PARSE_LOCK:
        return ast.parse(source)


def threads_per_job(jobs: int) -> int | None:
    """torch threads for each of ``jobs`` notebooks graded at once (None: torch's default)."""
    return max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None


def thread_env(threads: int | None) -> dict[str, str]:
    """The environment variables that cap OpenMP and MKL threads (read once, at import)."""
    return (
        {}
        if threads is None
        else {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    )
