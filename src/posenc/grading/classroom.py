"""Grading a class: ``posenc grade SUBMISSIONS --out REPORT_DIR``.

SUBMISSIONS holds one folder per student with any of the course notebooks (matched by their
``NN_`` number). For each notebook the grader works on a copy (the student's file is never
written), restores the canonical check cells from ``solutions/`` (matched by their cell id,
``check-<exercise>``) and flags cells that touch the grading machinery. The notebook then runs
in a worker of its own inside a jail (:mod:`posenc.grading.jail`), and each exercise is graded
*in the grader's process*: the graders' cases call the student's function through a proxy, and
only plain data crosses (:mod:`posenc.grading.session`, :mod:`posenc.grading.wire`).

Verdicts per exercise: passed, failed (with the hint; ``uses reference`` when the function
reached a reference answer the jail hides), not attempted (still NotImplementedError), error
(the student's code failed before the check could run), timeout. Per notebook: unreadable or
refused (with the reason), check cell altered or removed (graded with the canonical cell
restored), suspicious (flagged for a human to review). Text that comes from a submission
(folder names, exception messages) is quoted and labelled as the student's.

The learner's ``make grade`` is the one-student case of the same code path.
"""

from __future__ import annotations

import argparse
import ast
import csv
import functools
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from posenc.grading import EXERCISES  # noqa: F401 (importing it registers every exercise)
from posenc.grading.core import FAIL, PASS, REGISTRY
from posenc.grading.jail import Limits, Template, build_view, bwrap_path
from posenc.grading.session import USES_REFERENCE, Job, Verdict, run_notebook
from posenc.grading.text import quoted, shorten, students_text
from posenc.grading.threads import parse_python, threads_per_job
from posenc.runtime import course_root

SUSPICIOUS = re.compile(
    r"posenc\.grading|grading\.core|POSENC_GRADE_LOG|CheckResult|REGISTRY|run_cases"
    r"|^\s*def\s+check\s*\(|^\s*check\s*=|import\s+check\b|as\s+check\b",
    re.M,
)
MAX_NOTEBOOK_BYTES = 32 << 20
UNSAFE_FLAG = "UNSAFE: graded without a jail (--unsafe-no-jail)"
STATUS_MARK = {"passed": PASS, "failed": FAIL, "not attempted": "·", "error": "!", "timeout": "⌛"}


def default_solutions() -> Path:
    """The course's ``solutions/``, found from the working directory (see ``course_root``)."""
    return course_root() / "solutions"


@dataclass
class NotebookGrade:
    student: str
    notebook: str
    status: str = "graded"  # graded | unreadable | not a course notebook | error
    flags: list[str] = field(default_factory=list)
    exercises: list[Verdict] = field(default_factory=list)
    error: str = ""
    file: str = ""  # the submitted file's name, in the student's folder

    @property
    def n_passed(self) -> int:
        return sum(v.status == "passed" for v in self.exercises)


def exercises_of(stem: str) -> list[str]:
    return [name for name, ex in REGISTRY.items() if ex.notebook == stem]


def course_stem(path: Path, solutions: Path) -> str | None:
    """The course notebook a submitted file is, by its stem or by its NN_ number."""
    stems = {p.stem for p in solutions.glob("[0-9][0-9]_*.ipynb")}
    if path.stem in stems:
        return path.stem
    number = path.name[:2]
    matches = [s for s in stems if s.startswith(number + "_")] if number.isdigit() else []
    return matches[0] if len(matches) == 1 else None


def _shipped_sources(solution_nb) -> dict[str, tuple[str, str]]:
    """For each cell id: its source in the solution and in the handed-out student version."""
    from posenc.course.notebook_tools import student_version

    handed_out = student_version(solution_nb)
    return {
        s.get("id"): (s.source, h.source)
        for s, h in zip(solution_nb.cells, handed_out.cells, strict=True)
    }


def prepare(student_nb, solution_nb) -> tuple[object, list[str]]:
    """A copy of the student's notebook with the canonical check cells restored, all outputs
    cleared, and the flags raised on the way."""
    import copy

    nb = copy.deepcopy(student_nb)
    flags = []
    canonical = [
        (i, c) for i, c in enumerate(solution_nb.cells) if str(c.get("id", "")).startswith("check-")
    ]
    by_id = {c.get("id"): i for i, c in enumerate(nb.cells)}
    for position, check_cell in canonical:
        cid, name = check_cell["id"], check_cell["id"].removeprefix("check-")
        if cid in by_id:
            cell = nb.cells[by_id[cid]]
            if cell.source != check_cell.source or cell.cell_type != "code":
                flags.append(f"check cell altered: {name} (graded with the canonical cell)")
                cell.cell_type, cell.source = "code", check_cell.source
        else:
            flags.append(f"check cell removed: {name} (restored)")
            # Insert after the cell that precedes it in the solution, when the student has it.
            previous = solution_nb.cells[position - 1].get("id") if position else None
            ids = [c.get("id") for c in nb.cells]
            at = ids.index(previous) + 1 if previous in ids else len(nb.cells)
            nb.cells.insert(at, copy.deepcopy(check_cell))
            by_id = {c.get("id"): i for i, c in enumerate(nb.cells)}
    canonical_ids = {c["id"] for _, c in canonical}
    shipped = _shipped_sources(solution_nb)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if cell.get("id") in canonical_ids or cell.source in shipped.get(cell.get("id"), ()):
                continue  # a check cell (restored above) or a cell exactly as handed out
            if SUSPICIOUS.search(cell.source):
                flags.append(
                    f"suspicious: cell {index} touches the grading machinery (review by hand)"
                )
    return nb, flags


class Unreadable(Exception):
    """A submission that cannot be graded as a notebook (the reason is the message)."""


def refusal(folder: Path, path: Path) -> str:
    """Why ``path`` (in the student's ``folder``) must not be read, or ''. The target of a
    link is never opened, so nothing of it can reach the report."""
    try:
        inside = path.relative_to(folder)
    except ValueError:
        return "refused: outside the student's folder"
    parts = [folder, *(folder / Path(*inside.parts[: i + 1]) for i in range(len(inside.parts)))]
    if any(p.is_symlink() for p in parts):
        return "refused: a symbolic link (only regular files in the student's folder are read)"
    info = path.lstat()
    if not stat.S_ISREG(info.st_mode):
        return "refused: not a regular file"
    if info.st_size > MAX_NOTEBOOK_BYTES:
        return f"refused: larger than {MAX_NOTEBOOK_BYTES >> 20} MiB"
    return ""


def read_notebook(path: Path):
    """The submitted notebook, validated; raises Unreadable with the reason."""
    import nbformat

    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        nbformat.validate(nb)
    except RecursionError:
        raise Unreadable("unreadable: nested too deep") from None
    except Exception as err:  # noqa: BLE001 (any parse failure: the reason goes in the report)
        raise Unreadable(
            f"unreadable: {type(err).__name__} {students_text(str(err), 160)}"
        ) from None
    if any(not isinstance(c.get("source"), str) for c in nb.cells):
        raise Unreadable("unreadable: a cell's source is not text")
    return nb


def make_job(nb, timeout_cell: float, timeout_notebook: float) -> Job:
    """The code cells of a prepared notebook, and which of them are check cells."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    checks: dict[int, tuple[str, str]] = {}
    for index, cell in enumerate(code):
        call = _check_call(cell) if str(cell.get("id", "")).startswith("check-") else None
        if call and call[0] not in {n for n, _ in checks.values()}:
            checks[index] = call
    return Job([c.source for c in code], checks, timeout_cell, timeout_notebook)


def _check_call(cell) -> tuple[str, str] | None:
    """(exercise, expression for the function) from a canonical ``check("name", fn)`` cell."""
    for node in ast.walk(parse_python(cell.source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "check":
            name = node.args[0].value if isinstance(node.args[0], ast.Constant) else None
            if isinstance(name, str) and len(node.args) > 1:
                return name, ast.unparse(node.args[1])
    return None


class Workers:
    """Worker templates for the grading threads: one per thread, for one notebook's view at a
    time (a template is replaced when its thread moves on to another notebook)."""

    def __init__(self, solutions: Path, threads: int | None, jailed: bool, limits: Limits):
        self.results = solutions.parent / "results"
        self.threads, self.jailed, self.limits = threads, jailed, limits
        self._views_dir = Path(tempfile.mkdtemp(prefix="posenc-views-"))
        self._views: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        self._all: list[Template] = []

    def view(self, stem: str) -> Path:
        with self._lock:
            if stem not in self._views:
                hidden = tuple(n for name in exercises_of(stem) for n in REGISTRY[name].off_limits)
                self._views[stem] = build_view(self._views_dir / stem, hidden)
            return self._views[stem]

    def template(self, stem: str) -> Template:
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == stem and held[1].alive():
            return held[1]
        if held is not None:
            held[1].stop()
        template = Template(self.view(stem), self.results, self.threads, self.jailed)
        self._local.held = (stem, template)
        with self._lock:
            self._all.append(template)
        return template

    def run(self, stem: str, job: Job):
        """Run one notebook's job through this thread's template."""
        return run_notebook(
            job,
            start=lambda: self.template(stem).start(self.limits, self.threads),
            stop=self._reset,
        )

    def _reset(self) -> None:
        """Clean up after a notebook (a template that does not answer is stopped)."""
        held = getattr(self._local, "held", None)
        if held is not None and held[1].alive():
            held[1].reset()

    def close(self) -> None:
        for template in self._all:
            template.stop()
        shutil.rmtree(self._views_dir, ignore_errors=True)


def grade_notebook_file(
    student: str,
    path: Path,
    solutions: Path,
    workers: Workers,
    *,
    folder: Path | None = None,
    timeout_cell: float = 60,
    timeout_notebook: float = 300,
) -> NotebookGrade:
    """Grade one submitted notebook (a file in the student's ``folder``, by default its own
    folder); never raises for a broken or hostile submission."""
    stem = course_stem(path, solutions)
    grade = NotebookGrade(student, stem or path.stem, file=path.name)
    if stem is None:
        grade.status, grade.error = "not a course notebook", "the file's name matches no notebook"
        return grade
    names = exercises_of(stem)
    try:
        problem = refusal(folder or path.parent, path)
        if problem:
            raise Unreadable(problem)
        nb, grade.flags = prepare(read_notebook(path), _solution(solutions, stem))
    except Unreadable as why:
        grade.status, grade.error = "unreadable", str(why)
        grade.exercises = [Verdict(n, "error", "the notebook was not graded") for n in names]
        return grade
    run = workers.run(stem, make_job(nb, timeout_cell, timeout_notebook))
    grade.flags += run.flags
    grade.exercises = [run.verdicts[n] for n in names if n in run.verdicts]
    grade.exercises += [
        Verdict(n, "error", "no check cell") for n in names if n not in run.verdicts
    ]
    grade.flags += [f"uses reference: {v.exercise}" for v in grade.exercises if _uses_reference(v)]
    return grade


def _uses_reference(verdict: Verdict) -> bool:
    return verdict.status == "failed" and verdict.hint.startswith(USES_REFERENCE)


@functools.cache
def _solution_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _solution(solutions: Path, stem: str):
    import nbformat

    return nbformat.reads(_solution_text(solutions / f"{stem}.ipynb"), as_version=4)


def find_submissions(root: Path, solutions: Path) -> list[tuple[str, Path]]:
    """(student, notebook path) pairs: one folder per student, any .ipynb inside it."""
    if not root.is_dir():
        raise ValueError(f"SUBMISSIONS must be a folder of student folders, got {root}")
    pairs = []
    for student in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(student.rglob("*.ipynb")):
            if ".ipynb_checkpoints" not in path.parts:
                pairs.append((student.name, path))
    return pairs


def select_shard(students: list[str], shard: str | None) -> set[str]:
    """Students of shard 'i/n' (1 ≤ i ≤ n): every n-th student in sorted order."""
    if shard is None:
        return set(students)
    match = re.fullmatch(r"(\d+)/(\d+)", shard)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"--shard must be i/n with 1 <= i <= n, got {shard!r}")
    i, n = int(match.group(1)), int(match.group(2))
    ordered = sorted(set(students))
    return {s for k, s in enumerate(ordered) if k % n == i - 1}


def grade_one(task: tuple, workers: Workers) -> NotebookGrade:
    """Grade one task; whatever goes wrong becomes that notebook's error row."""
    student, folder, path, solutions, timeout_cell, timeout_notebook = task
    try:
        return grade_notebook_file(
            student,
            path,
            solutions,
            workers,
            folder=folder,
            timeout_cell=timeout_cell,
            timeout_notebook=timeout_notebook,
        )
    except Exception as err:  # noqa: BLE001 (no submission stops the run)
        grade = NotebookGrade(student, path.stem, status="error", file=path.name)
        grade.error = f"the grader could not grade it: {type(err).__name__}: {shorten(str(err))}"
        return grade


def grade_class(
    submissions: Path,
    *,
    solutions: Path | None = None,
    jobs: int = 1,
    timeout_cell: float = 60,
    timeout_notebook: float = 300,
    shard: str | None = None,
    show_progress: bool = True,
    jailed: bool = True,
    limits: Limits | None = None,
    skip: set[tuple[str, str]] = frozenset(),
    on_grade: Callable[[NotebookGrade], None] | None = None,
) -> list[NotebookGrade]:
    """Grade every submitted notebook (of shard ``i/n`` when given; not those in ``skip``, as
    (student, file name)), ``jobs`` at a time, each in a worker of its own (jailed unless
    ``jailed=False``). ``on_grade`` sees each grade as it comes."""
    from tqdm.auto import tqdm

    solutions = solutions or default_solutions()
    if jailed and bwrap_path() is None:
        raise ValueError(
            "bwrap (bubblewrap) is not installed; install it, or pass --unsafe-no-jail"
        )
    pairs = find_submissions(submissions, solutions)
    chosen = select_shard([s for s, _ in pairs], shard)
    tasks = [
        (s, submissions / s, p, solutions, timeout_cell, timeout_notebook)
        for s, p in sorted(pairs, key=lambda sp: (course_stem(sp[1], solutions) or "", sp))
        if s in chosen and (s, p.name) not in skip
    ]
    threads = threads_per_job(jobs)
    _set_grader_threads(threads)
    workers = Workers(solutions, threads, jailed, limits or Limits(cpu_seconds=timeout_notebook))
    bar = tqdm(total=len(tasks), desc="grading", unit="nb", disable=not show_progress)
    grades: list[NotebookGrade] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for grade in pool.map(lambda task: grade_one(task, workers), tasks):
                grade.flags += [] if jailed else [UNSAFE_FLAG]
                grades.append(grade)
                if on_grade is not None:
                    on_grade(grade)
                bar.update(1)
    finally:
        workers.close()
        bar.close()
    return sorted(grades, key=lambda g: (g.student, g.notebook, g.file))


def _set_grader_threads(threads: int | None) -> None:
    import torch

    if threads is not None:
        torch.set_num_threads(threads)


# --- the report ------------------------------------------------------------------------------

CSV_FIELDS = ["student", "notebook", "exercise", "status", "checks_passed", "checks_total", "flags"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text that starts like a formula gets a leading '."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half-written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(grades: list[NotebookGrade], out: Path) -> None:
    """grades.csv (one row per student and exercise) and grades.json (everything); each is
    replaced whole, so a report on disk is always complete."""
    out.mkdir(parents=True, exist_ok=True)
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(CSV_FIELDS)
    for g in grades:
        flags = "; ".join(g.flags + ([g.error] if g.error else []))
        for v in g.exercises or [Verdict("", g.status)]:
            row = [g.student, g.notebook, v.exercise, v.status, v.n_passed, v.n_total, flags]
            writer.writerow([csv_safe(cell) for cell in row])
    _atomic_write(out / "grades.csv", rows.getvalue())
    saved = [dict(asdict(g), student_supplied=["student", "file"]) for g in grades]
    _atomic_write(out / "grades.json", json.dumps(saved, indent=1, ensure_ascii=False) + "\n")


def load_report(out: Path) -> list[NotebookGrade]:
    """The grades already in ``out/grades.json`` (for --resume); [] when there are none."""
    try:
        saved = json.loads((out / "grades.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    grades = []
    for g in saved:
        g.pop("student_supplied", None)
        g["exercises"] = [Verdict(**v) for v in g.get("exercises", [])]
        grades.append(NotebookGrade(**g))
    return grades


def summary_table(grades: list[NotebookGrade]) -> str:
    """The printed table; a student's folder name is quoted (it is the student's text)."""
    lines = [f"{'student (folder)':20} {'notebook':26} {'passed':>7}  verdicts and flags"]
    for g in grades:
        marks = " ".join(STATUS_MARK.get(v.status, "?") for v in g.exercises)
        notes = "; ".join(
            g.flags + ([g.error] if g.error else []) + ([g.status] if g.status != "graded" else [])
        )
        lines.append(
            f"{quoted(g.student, 18):20} {g.notebook[:26]:26} "
            f"{g.n_passed:>3}/{len(g.exercises):<3}  {marks}  {notes}".rstrip()
        )
    lines.append("legend: ✔ passed  ✘ failed  · not attempted  ! error  ⌛ timeout")
    lines.append("[student's text: '…'] is quoted from a submission, not written by the grader")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posenc grade",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("submissions", type=Path, help="folder with one folder per student")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("-j", "--jobs", type=int, default=1, help="notebooks graded at once")
    parser.add_argument("--timeout-cell", type=int, default=60, help="seconds per cell")
    parser.add_argument("--timeout-notebook", type=int, default=300, help="seconds per notebook")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb, help="per notebook")
    parser.add_argument("--shard", help="grade share i of n (e.g. 2/4) of the students")
    parser.add_argument("--solutions", type=Path, help="solution notebooks (default: the course)")
    parser.add_argument(
        "--resume", action="store_true", help="keep the grades already in --out; grade the rest"
    )
    parser.add_argument(
        "--unsafe-no-jail",
        action="store_true",
        help="run submissions without bubblewrap (every row of the report says so)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    for name in ("jobs", "timeout_cell", "timeout_notebook", "memory_mb"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    previous = load_report(args.out) if args.resume else []
    grades = list(previous)
    limits = Limits(memory_mb=args.memory_mb, cpu_seconds=args.timeout_notebook)

    def save(grade: NotebookGrade) -> None:  # after every notebook: a crash loses nothing
        grades.append(grade)
        write_report(grades, args.out)

    try:
        grade_class(
            args.submissions,
            solutions=args.solutions,
            jobs=args.jobs,
            timeout_cell=args.timeout_cell,
            timeout_notebook=args.timeout_notebook,
            shard=args.shard,
            jailed=not args.unsafe_no_jail,
            limits=limits,
            skip={(g.student, g.file) for g in previous},
            on_grade=save,
        )
    except ValueError as err:
        parser.error(str(err))
    grades.sort(key=lambda g: (g.student, g.notebook, g.file))
    write_report(grades, args.out)
    print(summary_table(grades))
    print(f"wrote {args.out / 'grades.csv'} and {args.out / 'grades.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
