"""Grading a class: ``posenc grade SUBMISSIONS --out REPORT_DIR``.

SUBMISSIONS holds one folder per student with any of the course notebooks (matched by their
``NN_`` number). For each notebook the grader works on a copy (the student's file is never
written), restores the canonical check cells from ``solutions/`` (matched by their cell id,
``check-<exercise>``), flags cells that touch the grading machinery, executes the copy in a
fresh kernel with per-cell and per-notebook time limits, and reads each exercise's result
from the log that ``check()`` itself writes, never from the notebook's printed output.

Verdicts per exercise: passed, failed (with the hint), not attempted (still
NotImplementedError), error (the student's code failed before the check could run), timeout.
Per notebook: unreadable, check cell altered or removed (graded with the canonical cell
restored), suspicious (flagged for a human to review).

The learner's ``make grade`` is the one-student case of the same code path.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from posenc.grading.core import FAIL, GRADE_LOG_ENV, PASS, REGISTRY
from posenc.grading.warm_kernels import (
    WARM_KERNELS_ENV,
    ForkedProcess,
    WarmKernelTemplate,
    request_fork,
)
from posenc.runtime import course_root

SUSPICIOUS = re.compile(
    r"posenc\.grading|grading\.core|POSENC_GRADE_LOG|CheckResult|REGISTRY|run_cases"
    r"|^\s*def\s+check\s*\(|^\s*check\s*=|import\s+check\b|as\s+check\b",
    re.M,
)
STATUS_MARK = {"passed": PASS, "failed": FAIL, "not attempted": "·", "error": "!", "timeout": "⌛"}


def default_solutions() -> Path:
    """The course's ``solutions/``, found from the working directory (see ``course_root``)."""
    return course_root() / "solutions"


@dataclass
class Verdict:
    exercise: str
    status: str  # passed | failed | not attempted | error | timeout
    hint: str = ""
    n_passed: int = 0
    n_total: int = 0


@dataclass
class NotebookGrade:
    student: str
    notebook: str
    status: str = "graded"  # graded | unreadable | not a course notebook
    flags: list[str] = field(default_factory=list)
    exercises: list[Verdict] = field(default_factory=list)
    error: str = ""

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


def _kernel_died(pid_file: Path) -> bool:
    """True when the kernel was started and its process is gone (or a zombie)."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False  # never started
    return ForkedProcess(pid).poll() is not None


def _start_runner(nb_path, summary, timeout_cell, env, stderr_file, warm_kernels):
    """Start the process that executes the notebook (posenc.grading.notebook_exec): forked from the
    warm template when there is one, else a fresh Python. Either way it leads its own process
    group and writes to ``stderr_file``."""
    argv = [str(nb_path), str(summary), str(timeout_cell)]
    if warm_kernels:
        try:
            fds = (os.open(os.devnull, os.O_WRONLY), stderr_file.fileno())
            try:
                return request_fork(
                    warm_kernels, "notebook", argv, env=env, cwd=str(nb_path.parent), output_fds=fds
                )
            finally:
                os.close(fds[0])
        except OSError:
            pass  # the template is gone: start cold
    return subprocess.Popen(
        [sys.executable, "-m", "posenc.grading.notebook_exec", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr_file,
        start_new_session=True,
    )


def _kill_tree(process, pid_file: Path) -> None:
    """Kill the kernel (by the pid the runner wrote) and the runner's process group."""
    for pid in [int(pid_file.read_text())] if pid_file.exists() else []:
        for kill in (
            lambda p: os.killpg(os.getpgid(p), signal.SIGKILL),
            lambda p: os.kill(p, signal.SIGKILL),
        ):
            try:
                kill(pid)
            except (ProcessLookupError, PermissionError):
                pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if process.poll() is None:  # killed before it had its own group
        process.kill()


def grade_notebook_file(
    student: str,
    path: Path,
    solutions: Path,
    *,
    timeout_cell: int = 60,
    timeout_notebook: int = 300,
    threads: int | None = None,
    warm_kernels: str | None = None,
) -> NotebookGrade:
    """Grade one submitted notebook; never raises for a broken submission.

    ``warm_kernels`` is the socket of a
    :class:`~posenc.grading.warm_kernels.WarmKernelTemplate`; the notebook's kernel is then
    forked from it (fresh, used once) instead of started cold."""
    import nbformat

    stem = course_stem(path, solutions)
    grade = NotebookGrade(student, stem or path.stem)
    if stem is None:
        grade.status, grade.error = "not a course notebook", f"{path.name} matches no notebook"
        return grade
    names = exercises_of(stem)
    try:
        student_nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        nbformat.validate(student_nb)
    except Exception as err:
        grade.status = "unreadable"
        grade.error = (
            f"{type(err).__name__}: {str(err).strip().splitlines()[0][:160]}"
            if str(err).strip()
            else type(err).__name__
        )
        grade.exercises = [Verdict(n, "error", "notebook could not be read") for n in names]
        return grade
    solution_nb = nbformat.read(solutions / f"{stem}.ipynb", as_version=4)
    nb, grade.flags = prepare(student_nb, solution_nb)
    with tempfile.TemporaryDirectory(prefix="posenc-class-") as tmp:
        work = Path(tmp)
        for other in solutions.parent.glob("results"):  # notebooks read ../results
            (work / "results").symlink_to(other.resolve())
        (work / "nb").mkdir()
        nb_path, summary, log = work / "nb" / f"{stem}.ipynb", work / "summary.json", work / "log"
        nbformat.write(nb, nb_path)
        log.touch()
        env = dict(os.environ, **{GRADE_LOG_ENV: str(log)})
        env.pop(WARM_KERNELS_ENV, None)
        if warm_kernels:
            env[WARM_KERNELS_ENV] = warm_kernels
        if threads is not None:  # several notebooks at once: share the cores, do not fight
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
        with open(work / "stderr", "w") as stderr_file:
            runner = _start_runner(nb_path, summary, timeout_cell, env, stderr_file, warm_kernels)
        timed_out = kernel_died = False
        try:
            runner.wait(timeout=timeout_notebook)
        except subprocess.TimeoutExpired:
            timed_out = not _kernel_died(summary.with_suffix(".pid"))
            kernel_died = not timed_out
            _kill_tree(runner, summary.with_suffix(".pid"))
            runner.wait()
        results = {}
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
                results[entry["name"]] = entry
            except (ValueError, KeyError, TypeError):
                grade.flags.append("suspicious: the grade log holds a line check() did not write")
        ran = summary.exists()
        info = json.loads(summary.read_text()) if ran else {"cells": [], "died": ""}
        errors = [
            x
            for x in (work / "stderr").read_text(errors="replace").splitlines()
            if x.strip() and "WARNING" not in x
        ]
        last_error = errors[-1][:200] if errors else ""
    if kernel_died:
        grade.error = "the kernel died (the notebook exited or crashed it)"
    elif timed_out:
        grade.error = f"the notebook ran past {timeout_notebook} s and was stopped"
    elif info["died"]:
        grade.error = info["died"]
    elif not ran:
        grade.error = f"the grader's runner failed: {last_error or 'no summary written'}"
    cells = {c["id"]: c for c in info["cells"]}
    for name in names:
        entry = results.get(name)
        if entry is not None and entry.get("name") == name:
            hint = str(entry.get("hint", ""))
            status = (
                "passed"
                if entry.get("passed")
                else "not attempted"
                if "NotImplementedError" in hint
                else "failed"
            )
            grade.exercises.append(
                Verdict(
                    name, status, hint, int(entry.get("n_passed", 0)), int(entry.get("n_total", 0))
                )
            )
            continue
        cell = cells.get(f"check-{name}", {})
        if "KeyboardInterrupt" in cell.get("error", "") or (timed_out and not cell.get("ran")):
            grade.exercises.append(Verdict(name, "timeout", "stopped at the time limit"))
        elif cell.get("error"):
            grade.exercises.append(Verdict(name, "error", cell["error"]))
        else:
            grade.exercises.append(Verdict(name, "error", grade.error or "check cell did not run"))
    return grade


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


_templates: dict[int | None, WarmKernelTemplate] = {}  # per thread count, started on first use


def warm_template(threads: int | None = None) -> str | None:
    """The socket of this process's warm-kernel template (started once); None if it fails."""
    template = _templates.get(threads)
    if template is None or template.process.poll() is not None:
        template = _templates[threads] = WarmKernelTemplate(threads)
        atexit.register(template.stop)
    if not template.ready():
        return None  # the kernels start cold instead: slower, same grades
    return template.socket_path


def _grade_task(args) -> NotebookGrade:
    student, path, solutions, timeout_cell, timeout_notebook, threads, warm = args
    return grade_notebook_file(
        student,
        Path(path),
        Path(solutions),
        timeout_cell=timeout_cell,
        timeout_notebook=timeout_notebook,
        threads=threads,
        warm_kernels=warm_template(threads) if warm else None,
    )


def grade_class(
    submissions: Path,
    *,
    solutions: Path | None = None,
    jobs: int = 1,
    timeout_cell: int = 60,
    timeout_notebook: int = 300,
    shard: str | None = None,
    show_progress: bool = True,
    warm_kernels: bool = True,
) -> list[NotebookGrade]:
    """Grade every submitted notebook (of shard ``i/n`` when given), ``jobs`` at a time.

    With ``warm_kernels`` each grading process keeps a template with the course's libraries
    imported and forks every notebook's kernel from it (see :mod:`posenc.grading.warm_kernels`)."""
    from tqdm.auto import tqdm

    solutions = solutions or default_solutions()
    pairs = find_submissions(submissions, solutions)
    chosen = select_shard([s for s, _ in pairs], shard)
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None
    tasks = [
        (s, str(p), str(solutions), timeout_cell, timeout_notebook, threads, warm_kernels)
        for s, p in pairs
        if s in chosen
    ]
    bar = tqdm(total=len(tasks), desc="grading", unit="nb", disable=not show_progress)
    if jobs <= 1:
        grades = []
        for task in tasks:
            grades.append(_grade_task(task))
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            grades = []
            for grade in pool.map(_grade_task, tasks):
                grades.append(grade)
                bar.update(1)
    bar.close()
    return grades


def write_report(grades: list[NotebookGrade], out: Path) -> None:
    """grades.csv (one row per student and exercise) and grades.json (everything)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["student", "notebook", "exercise", "status", "checks_passed", "checks_total", "flags"]
        )
        for g in grades:
            flags = "; ".join(g.flags + ([g.error] if g.error else []))
            if not g.exercises:
                writer.writerow([g.student, g.notebook, "", g.status, 0, 0, flags])
            for v in g.exercises:
                writer.writerow(
                    [g.student, g.notebook, v.exercise, v.status, v.n_passed, v.n_total, flags]
                )
    (out / "grades.json").write_text(
        json.dumps([asdict(g) for g in grades], indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )


def summary_table(grades: list[NotebookGrade]) -> str:
    lines = [f"{'student':18} {'notebook':28} {'passed':>7}  verdicts and flags"]
    for g in grades:
        marks = " ".join(STATUS_MARK.get(v.status, "?") for v in g.exercises)
        notes = "; ".join(
            g.flags + ([g.error] if g.error else []) + ([g.status] if g.status != "graded" else [])
        )
        lines.append(
            f"{g.student[:18]:18} {g.notebook[:28]:28} "
            f"{g.n_passed:>3}/{len(g.exercises):<3}  {marks}  {notes}".rstrip()
        )
    lines.append("legend: ✔ passed  ✘ failed  · not attempted  ! error  ⌛ timeout")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
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
    parser.add_argument("--shard", help="grade share i of n (e.g. 2/4) of the students")
    parser.add_argument("--solutions", type=Path, help="solution notebooks (default: the course)")
    parser.add_argument(
        "--cold-kernels",
        action="store_true",
        help="start every kernel from scratch instead of forking a warm template (slower)",
    )
    args = parser.parse_args(argv)
    for name in ("jobs", "timeout_cell", "timeout_notebook"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    try:
        grades = grade_class(
            args.submissions,
            solutions=args.solutions,
            jobs=args.jobs,
            timeout_cell=args.timeout_cell,
            timeout_notebook=args.timeout_notebook,
            shard=args.shard,
            warm_kernels=not args.cold_kernels,
        )
    except ValueError as err:
        parser.error(str(err))
    write_report(grades, args.out)
    print(summary_table(grades))
    print(f"wrote {args.out / 'grades.csv'} and {args.out / 'grades.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
