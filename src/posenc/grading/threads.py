"""One thread-count setting for class grading: notebooks graded at once share the cores."""

from __future__ import annotations

import os


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
