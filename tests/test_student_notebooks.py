"""Every exercise of every student notebook, run as shipped, fails with NotImplementedError;
the self-grading runner (the one-student case of the class grader) reports a solution as
passing and a broken file as unreadable."""

import nbformat
import pytest
from conftest import NOTEBOOKS, SOLUTIONS

from posenc.course.notebook_tools import solution_notebooks
from posenc.grading import EXERCISES
from posenc.grading.runner import format_table, grade_notebook

STUDENT = solution_notebooks(NOTEBOOKS)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """Every student notebook as handed out, graded as one student's submission (2 at once)."""
    import shutil

    from posenc.grading.classroom import grade_class

    root = tmp_path_factory.mktemp("submissions")
    (root / "shipped").mkdir()
    for path in STUDENT:
        shutil.copy(path, root / "shipped")
    return {g.notebook: g for g in grade_class(root, jobs=2, show_progress=False)}


@pytest.mark.parametrize("path", STUDENT, ids=[p.stem for p in STUDENT])
def test_shipped_notebook_fails_every_check_with_not_implemented(shipped, path):
    grade = shipped[path.stem]
    assert not grade.error and not grade.flags, (grade.error, grade.flags)
    names = [v.exercise for v in grade.exercises]
    assert names == [n for n, nb in EXERCISES.items() if nb == path.stem] and names
    for verdict in grade.exercises:
        assert verdict.status == "not attempted", (verdict.exercise, verdict.hint)
        assert "NotImplementedError" in verdict.hint


def test_runner_reports_a_solution_as_passing():
    grade = grade_notebook(SOLUTIONS / "00_attention_has_no_order.ipynb")
    assert not grade.error and grade.exercises
    assert all(v.status == "passed" for v in grade.exercises)
    assert "total: 2/2 exercises passed" in format_table([grade])


def test_runner_reports_an_unreadable_notebook(tmp_path):
    bad = tmp_path / "00_attention_has_no_order.ipynb"
    bad.write_text("{ this is not json")
    grade = grade_notebook(bad)
    assert grade.status == "unreadable" and grade.error
    assert all(v.status == "error" for v in grade.exercises)


def test_a_removed_check_cell_is_restored_and_flagged(tmp_path):
    nb = nbformat.read(SOLUTIONS / "00_attention_has_no_order.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != "check-self_attention"]
    path = tmp_path / "00_attention_has_no_order.ipynb"
    nbformat.write(nb, path)
    grade = grade_notebook(path)
    assert any("removed" in flag for flag in grade.flags)
    assert all(v.status == "passed" for v in grade.exercises)
