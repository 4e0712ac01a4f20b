"""Every exercise of every student notebook, run as shipped, fails with NotImplementedError;
the self-grading runner reports a solution as all ✔ and a broken file as an error."""

import shutil

import pytest
from conftest import NOTEBOOKS, SOLUTIONS

from posenc.grading import EXERCISES
from posenc.grading.runner import NOT_RUN, format_table, grade_notebook
from posenc.notebook_tools import solution_notebooks

STUDENT = solution_notebooks(NOTEBOOKS)


@pytest.mark.parametrize("path", STUDENT, ids=[p.stem for p in STUDENT])
def test_shipped_notebook_fails_every_check_with_not_implemented(path):
    report = grade_notebook(path)
    assert not report.error
    names = [e.name for e in report.exercises]
    assert names == [n for n, nb in EXERCISES.items() if nb == path.stem] and names
    for result in report.exercises:
        assert not result.passed, result.name
        assert result.hint != NOT_RUN, f"{result.name}: its check cell never ran"
        assert "NotImplementedError" in result.hint, (result.name, result.hint)


def test_runner_reports_a_solution_as_passing():
    report = grade_notebook(SOLUTIONS / "00_attention_has_no_order.ipynb")
    assert not report.error and report.exercises
    assert all(e.passed for e in report.exercises)
    assert "total: 2/2 exercises passed" in format_table([report])


def test_runner_reports_an_unreadable_notebook(tmp_path):
    bad = tmp_path / "00_attention_has_no_order.ipynb"
    bad.write_text("{ this is not json")
    report = grade_notebook(bad)
    assert report.error
    assert all(not e.passed and e.hint == NOT_RUN for e in report.exercises)
    assert "error" in format_table([report])


def test_runner_counts_a_check_cell_that_was_removed_as_not_run(tmp_path):
    import nbformat

    nb = nbformat.read(SOLUTIONS / "00_attention_has_no_order.ipynb", as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != "check-self_attention"]
    path = tmp_path / "00_attention_has_no_order.ipynb"
    nbformat.write(nb, path)
    shutil.copy(SOLUTIONS / "00_attention_has_no_order.ipynb", tmp_path / "copy.ipynb")
    report = grade_notebook(path)
    by_name = {e.name: e for e in report.exercises}
    assert by_name["self_attention"].hint == NOT_RUN
    assert by_name["permutation_equivariance_gap"].passed
