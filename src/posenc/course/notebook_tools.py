"""One source for student and solution notebooks, and running notebooks in a fresh kernel.

``solutions/NN_topic.ipynb`` is the only notebook anybody edits. Inside its code cells an
answer is fenced by two marker lines::

    def square(x):
        ### BEGIN SOLUTION
        return x * x
        ### END SOLUTION

:func:`strip_solutions` writes the student version, where each fenced region becomes::

    def square(x):
        # YOUR CODE HERE
        raise NotImplementedError()

at the indentation of the BEGIN marker. Markdown is kept; every output is cleared, so a student
notebook holds no stored output at all (nbval then only fails it on an error).

Command line::

    python -m posenc.course.notebook_tools solutions notebooks          # write notebooks/
    python -m posenc.course.notebook_tools --check solutions notebooks  # exit 1 when out of sync
    python -m posenc.course.notebook_tools --execute solutions          # re-run solutions
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
NB_VERSION = 4


class MarkerError(ValueError):
    """A solution marker is misplaced: nested, unclosed, unopened, or outside a code cell."""


def _where(notebook: str, index: int, cell) -> str:
    return f"{notebook}, cell {index} (id {cell.get('id', '?')})"


def strip_source(source: str, where: str = "<cell>") -> str:
    """Replace every BEGIN/END SOLUTION region of one code cell's source by the student stub."""
    out: list[str] = []
    indent: str | None = None  # indentation of the open BEGIN marker, None when outside
    for line in source.split("\n"):
        marker = line.strip()
        if marker == BEGIN:
            if indent is not None:
                raise MarkerError(f"{where}: nested '{BEGIN}' (the previous one is not closed)")
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + stub for stub in STUB)
        elif marker == END:
            if indent is None:
                raise MarkerError(f"{where}: '{END}' without a matching '{BEGIN}'")
            indent = None
        elif indent is None:
            out.append(line)
    if indent is not None:
        raise MarkerError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out)


def _has_marker(source: str) -> bool:
    return any(line.strip() in (BEGIN, END) for line in source.split("\n"))


def student_version(nb: nbformat.NotebookNode, name: str = "<notebook>") -> nbformat.NotebookNode:
    """Return the student copy of a solution notebook (the input is left untouched)."""
    student = copy.deepcopy(nb)
    student.metadata.pop("widgets", None)  # the solution run's widget state
    for index, cell in enumerate(student.cells):
        cell.metadata.pop("execution", None)  # the solution run's timestamps
        where = _where(name, index, cell)
        if cell.cell_type != "code":
            if _has_marker(cell.source):
                raise MarkerError(f"{where}: solution marker in a {cell.cell_type} cell")
            continue
        cell.source = strip_source(cell.source, where)
        cell.outputs = []
        cell.execution_count = None
    return student


def strip_solutions(src: str | Path, dst: str | Path) -> Path:
    """Write the student version of solution notebook ``src`` to ``dst``.

    ``dst`` may be a folder (the file keeps its name). Nothing is written when a marker is
    wrong: the :class:`MarkerError` names the notebook and the cell.
    """
    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        dst = dst / src.name
    nb = nbformat.read(src, as_version=NB_VERSION)
    student = student_version(nb, name=str(src))
    text = nbformat.writes(student)
    dst.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return dst


def solution_notebooks(folder: str | Path) -> list[Path]:
    """The course notebooks in a folder, sorted by number (``NN_topic.ipynb``)."""
    return sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))


def write_student_notebooks(solutions: str | Path, notebooks: str | Path) -> list[Path]:
    """Write ``notebooks/NN_topic.ipynb`` for every ``solutions/NN_topic.ipynb``."""
    Path(notebooks).mkdir(parents=True, exist_ok=True)
    # Build every student version first, so that one bad marker leaves nothing half-written.
    staged = []
    for src in solution_notebooks(solutions):
        nb = student_version(nbformat.read(src, as_version=NB_VERSION), name=str(src))
        staged.append((Path(notebooks) / src.name, nbformat.writes(nb) + "\n"))
    for dst, text in staged:
        dst.write_text(text, encoding="utf-8")
    return [dst for dst, _ in staged]


def out_of_sync(solutions: str | Path, notebooks: str | Path) -> list[str]:
    """Names of student notebooks that differ from what :func:`strip_solutions` would write.

    Also lists student notebooks that have no solution and solutions with no student notebook.
    """
    problems = []
    sol = {p.name: p for p in solution_notebooks(solutions)}
    stu = {p.name: p for p in solution_notebooks(notebooks)}
    for name in sorted(set(sol) | set(stu)):
        if name not in stu:
            problems.append(f"{name}: missing from {notebooks}")
        elif name not in sol:
            problems.append(f"{name}: has no solution in {solutions}")
        else:
            expected = student_version(nbformat.read(sol[name], as_version=NB_VERSION), name)
            actual = nbformat.read(stu[name], as_version=NB_VERSION)
            if expected != actual:
                problems.append(f"{name}: differs from the version generated from {solutions}")
    return problems


def kernel_manager():
    """A Jupyter kernel manager that runs this very Python interpreter (this env's packages)."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    km.kernel_spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return km


def execute_notebook(
    nb: nbformat.NotebookNode,
    *,
    cwd: str | Path,
    timeout_cell: int = 120,
    allow_errors: bool = False,
    env: dict[str, str] | None = None,
) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in a fresh kernel started in ``cwd``; return the executed copy.

    ``env`` adds environment variables for the kernel only.
    """
    import os

    from nbclient import NotebookClient

    nb = copy.deepcopy(nb)
    km = kernel_manager()
    kernel_env = dict(os.environ, **(env or {}))
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout_cell,
        allow_errors=allow_errors,
        record_timing=False,  # no timestamps in the stored notebooks: diffs show real changes
        resources={"metadata": {"path": str(cwd)}},
    )
    try:
        client.execute(cwd=str(cwd), env=kernel_env)
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return nb


def execute_solutions(solutions: str | Path, timeout_cell: int = 300) -> list[Path]:
    """Re-run each solution notebook in place (outputs refreshed), then report what ran."""
    from tqdm.auto import tqdm

    done = []
    for path in tqdm(solution_notebooks(solutions), desc="executing solutions", unit="nb"):
        nb = nbformat.read(path, as_version=NB_VERSION)
        executed = execute_notebook(nb, cwd=path.parent, timeout_cell=timeout_cell)
        nbformat.write(executed, path)
        done.append(path)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posenc.course.notebook_tools",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("solutions", help="folder of solution notebooks (the source of truth)")
    parser.add_argument("notebooks", nargs="?", default="notebooks", help="student folder")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report notebooks out of sync")
    mode.add_argument(
        "--execute",
        action="store_true",
        help="re-run the solution notebooks in place, then write student versions",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = out_of_sync(args.solutions, args.notebooks)
            for line in problems:
                print(line)
            return 1 if problems else 0
        if args.execute:
            execute_solutions(args.solutions)
        for path in write_student_notebooks(args.solutions, args.notebooks):
            print(f"wrote {path}")
    except MarkerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
