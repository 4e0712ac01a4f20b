"""Short, safe text for grading reports: one truncation rule, and student-supplied text that
is always quoted and labelled so it cannot pass for the grader's own words."""

from __future__ import annotations

ELLIPSIS = "..."


def shorten(text: str, limit: int = 120) -> str:
    """The first non-empty line of ``text``, cut to at most ``limit`` characters."""
    if limit < len(ELLIPSIS) + 1:
        raise ValueError(f"limit must be at least {len(ELLIPSIS) + 1}, got {limit}")
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return _cut(lines[0].strip() if lines else "", limit)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - len(ELLIPSIS)] + ELLIPSIS


def quoted(text: str, limit: int = 120) -> str:
    """``text`` as a Python string literal (quotes, newlines and control characters escaped),
    cut to ``limit`` characters."""
    return repr(_cut(str(text), limit))


def students_text(text: str, limit: int = 120) -> str:
    """Label text that came from a submission (an exception message): its first line, quoted."""
    return f"[student's text: {repr(shorten(text, limit))}]"
