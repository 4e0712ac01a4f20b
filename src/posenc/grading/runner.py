"""Self-grading: run notebooks in a fresh kernel and collect each exercise's check result.

    python -m posenc.grading notebooks/            # every course notebook in the folder
    python -m posenc.grading notebooks/02_*.ipynb   # some of them

The results come from ``check()`` itself: it appends each result to a log file whose path
the runner passes to the kernel, so they do not depend on what a notebook prints.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from posenc.grading.core import FAIL, GRADE_LOG_ENV, PASS, REGISTRY

NOT_RUN = "check cell did not run"


@dataclass
class ExerciseResult:
    name: str
    passed: bool
    hint: str = ""
    n_passed: int = 0
    n_total: int = 0


@dataclass
class NotebookReport:
    notebook: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    error: str = ""  # why the notebook could not be run through, if it could not

    @property
    def n_passed(self) -> int:
        return sum(e.passed for e in self.exercises)


def expected_exercises(notebook_stem: str) -> list[str]:
    """Exercise names that notebook ``NN_topic`` asks for, in registration order."""
    return [name for name, ex in REGISTRY.items() if ex.notebook == notebook_stem]


def grade_notebook(path: str | Path, *, timeout_cell: int = 120) -> NotebookReport:
    """Execute one notebook (errors allowed) and return what each of its checks said."""
    import nbformat

    from posenc.notebook_tools import execute_notebook

    path = Path(path)
    report = NotebookReport(path.stem)
    with tempfile.TemporaryDirectory(prefix="posenc-grade-") as tmp:
        log = Path(tmp) / "checks.jsonl"
        log.touch()
        try:
            nb = nbformat.read(path, as_version=4)
            execute_notebook(
                nb,
                cwd=path.parent,
                timeout_cell=timeout_cell,
                allow_errors=True,
                env={GRADE_LOG_ENV: str(log)},
            )
        except Exception as err:  # unreadable file, timeout, dead kernel: report, go on
            first_line = (str(err).strip().splitlines() or [""])[0][:200]
            report.error = f"{type(err).__name__}: {first_line}"
        seen = {}
        for line in log.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            seen[entry["name"]] = entry  # the last run of a check counts
    for name in expected_exercises(path.stem):
        entry = seen.get(name)
        if entry is None:
            report.exercises.append(ExerciseResult(name, False, NOT_RUN))
        else:
            report.exercises.append(
                ExerciseResult(
                    name, entry["passed"], entry["hint"], entry["n_passed"], entry["n_total"]
                )
            )
    return report


def course_notebooks(targets: list[str]) -> list[Path]:
    paths: list[Path] = []
    for target in targets:
        p = Path(target)
        paths.extend(sorted(p.glob("[0-9][0-9]_*.ipynb")) if p.is_dir() else [p])
    return paths


def format_table(reports: list[NotebookReport]) -> str:
    rows = [("notebook", "exercise", "result", "hint")]
    for r in reports:
        if r.error:
            rows.append((r.notebook, "—", "error", r.error))
        for e in r.exercises:
            rows.append((r.notebook, e.name, PASS if e.passed else FAIL, e.hint))
    width = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(width[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
        for row in rows
    ]
    lines.insert(1, "-" * (sum(width) + 10))
    n_passed = sum(r.n_passed for r in reports)
    n_total = sum(len(r.exercises) for r in reports)
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
    reports = [
        grade_notebook(p, timeout_cell=args.timeout_cell)
        for p in tqdm(paths, desc="grading", unit="nb")
    ]
    print(format_table(reports))
    all_passed = all(not r.error and r.n_passed == len(r.exercises) for r in reports)
    return 0 if all_passed or args.exit_zero else 1


if __name__ == "__main__":
    sys.exit(main())
