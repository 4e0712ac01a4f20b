"""Self-grading for a learner: ``make grade`` or ``python -m posenc.grading notebooks/``.

The one-student case of :mod:`posenc.grading.classroom`: each notebook is graded by the same
code path as a class submission (a copy, canonical check cells restored, a worker process of
its own that answers the graders' calls; jailed when bubblewrap is installed), and printed as
a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from posenc.grading.classroom import (
    NotebookGrade,
    Workers,
    default_solutions,
    grade_notebook_file,
)
from posenc.grading.core import FAIL, PASS
from posenc.grading.jail import Limits, bwrap_path


def grade_notebooks(
    paths: list[Path], *, timeout_cell: int = 120, timeout_notebook: int = 900, progress=iter
) -> list[NotebookGrade]:
    """Execute your notebooks, each in a worker of its own, and return what each check said."""
    solutions = default_solutions()
    jailed = bwrap_path() is not None  # your own code: a jail when there is one, else none
    workers = Workers(solutions, None, jailed, Limits(cpu_seconds=timeout_notebook))
    try:
        return [
            grade_notebook_file(
                "you",
                Path(p),
                solutions,
                workers,
                timeout_cell=timeout_cell,
                timeout_notebook=timeout_notebook,
            )
            for p in progress(paths)
        ]
    finally:
        workers.close()


def grade_notebook(
    path: str | Path, *, timeout_cell: int = 120, timeout_notebook: int = 900
) -> NotebookGrade:
    """Execute one of your notebooks and return what each of its checks said."""
    return grade_notebooks(
        [Path(path)], timeout_cell=timeout_cell, timeout_notebook=timeout_notebook
    )[0]


def course_notebooks(targets: list[str]) -> list[Path]:
    paths: list[Path] = []
    for target in targets:
        p = Path(target)
        paths.extend(sorted(p.glob("[0-9][0-9]_*.ipynb")) if p.is_dir() else [p])
    return paths


def format_table(grades: list[NotebookGrade]) -> str:
    marks = {"passed": PASS}
    rows = [("notebook", "exercise", "result", "hint")]
    for g in grades:
        for note in g.flags + ([g.error] if g.error else []):
            rows.append((g.notebook, "—", "note", note))
        for v in g.exercises:
            rows.append(
                (
                    g.notebook,
                    v.exercise,
                    marks.get(v.status, FAIL) + " " + v.status,
                    "" if v.status == "passed" else v.hint,
                )
            )
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    lines.insert(1, "-" * (sum(width) + 10))
    n_passed = sum(g.n_passed for g in grades)
    n_total = sum(len(g.exercises) for g in grades)
    lines.append(f"total: {n_passed}/{n_total} exercises passed")
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(
        prog="python -m posenc.grading",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", nargs="+", help="notebook files or folders of notebooks")
    parser.add_argument("--timeout-cell", type=int, default=120, help="seconds per cell")
    parser.add_argument(
        "--exit-zero",
        action="store_true",
        help="exit 0 even when an exercise fails (for a learner's progress view)",
    )
    args = parser.parse_args(argv)
    if args.timeout_cell <= 0:
        parser.error(f"--timeout-cell must be > 0 seconds, got {args.timeout_cell}")
    paths = course_notebooks(args.targets)
    if not paths:
        parser.error(f"no course notebooks (NN_topic.ipynb) found in {' '.join(args.targets)}")
    grades = grade_notebooks(
        paths,
        timeout_cell=args.timeout_cell,
        progress=lambda ps: tqdm(ps, desc="grading", unit="nb"),
    )
    print(format_table(grades))
    all_passed = all(g.n_passed == len(g.exercises) and not g.error for g in grades)
    return 0 if all_passed or args.exit_zero else 1


if __name__ == "__main__":
    sys.exit(main())
