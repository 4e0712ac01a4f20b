"""The student notebooks are generated from the solutions, and the generator is strict."""

import nbformat
import pytest
from conftest import NOTEBOOKS, SOLUTIONS
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from posenc.course.notebook_tools import (
    MarkerError,
    out_of_sync,
    solution_notebooks,
    strip_solutions,
    strip_source,
    write_student_notebooks,
)

ANSWER = """def square(x):
    \"\"\"Return x squared.\"\"\"
    ### BEGIN SOLUTION
    y = x * x
    return y
    ### END SOLUTION
"""


def test_region_becomes_stub_at_marker_indentation():
    assert strip_source(ANSWER) == (
        'def square(x):\n    """Return x squared."""\n'
        "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    )


def test_two_regions_and_top_level_region():
    src = (
        "### BEGIN SOLUTION\na = 1\n### END SOLUTION\nb = 2\n"
        "  ### BEGIN SOLUTION\n  c\n  ### END SOLUTION"
    )
    assert strip_source(src) == (
        "# YOUR CODE HERE\nraise NotImplementedError()\nb = 2\n"
        "  # YOUR CODE HERE\n  raise NotImplementedError()"
    )


@pytest.mark.parametrize(
    "source, problem",
    [
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "nested"),
        ("### BEGIN SOLUTION\nx = 1", "never closed"),
        ("x = 1\n### END SOLUTION", "without a matching"),
    ],
)
def test_bad_markers_name_notebook_and_cell(tmp_path, source, problem):
    nb = new_notebook(cells=[new_markdown_cell("intro"), new_code_cell(source)])
    src = tmp_path / "07_demo.ipynb"
    nbformat.write(nb, src)
    dst = tmp_path / "out.ipynb"
    with pytest.raises(MarkerError, match=problem) as err:
        strip_solutions(src, dst)
    assert "07_demo.ipynb" in str(err.value) and "cell 1" in str(err.value)
    assert not dst.exists(), "nothing may be written when a marker is wrong"


def test_marker_in_markdown_is_an_error(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("### BEGIN SOLUTION\nsecret\n### END SOLUTION")])
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    with pytest.raises(MarkerError, match="markdown cell"):
        strip_solutions(tmp_path / "01_x.ipynb", tmp_path / "out.ipynb")


def test_outputs_cleared_markdown_kept(tmp_path):
    code = new_code_cell(ANSWER, execution_count=3)
    code.outputs = [new_output("stream", name="stdout", text="✔ square: 1/1 checks passed\n")]
    plain = new_code_cell("print(1)", execution_count=4)
    plain.outputs = [new_output("stream", name="stdout", text="1\n")]
    nb = new_notebook(cells=[new_markdown_cell("# Title"), code, plain])
    nbformat.write(nb, tmp_path / "03_x.ipynb")
    out = nbformat.read(strip_solutions(tmp_path / "03_x.ipynb", tmp_path), as_version=4)
    assert out.cells[0].source == "# Title"
    assert "x * x" not in out.cells[1].source and "NotImplementedError" in out.cells[1].source
    assert all(c.outputs == [] and c.execution_count is None for c in out.cells[1:])
    assert [c.id for c in out.cells] == [c.id for c in nb.cells], "cell ids must be kept"


def test_one_bad_notebook_leaves_the_folder_untouched(tmp_path):
    sol, stu = tmp_path / "solutions", tmp_path / "notebooks"
    sol.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell(ANSWER)]), sol / "00_good.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell("### END SOLUTION")]), sol / "01_bad.ipynb")
    with pytest.raises(MarkerError):
        write_student_notebooks(sol, stu)
    assert not list(stu.glob("*.ipynb"))


def test_out_of_sync_detects_edits_and_missing_files(tmp_path):
    sol, stu = tmp_path / "solutions", tmp_path / "notebooks"
    sol.mkdir()
    nbformat.write(new_notebook(cells=[new_code_cell(ANSWER)]), sol / "00_a.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell(ANSWER)]), sol / "01_b.ipynb")
    write_student_notebooks(sol, stu)
    assert out_of_sync(sol, stu) == []
    edited = nbformat.read(stu / "00_a.ipynb", as_version=4)
    edited.cells[0].source += "\n# a hand edit"
    nbformat.write(edited, stu / "00_a.ipynb")
    (stu / "01_b.ipynb").unlink()
    problems = out_of_sync(sol, stu)
    assert any(p.startswith("00_a.ipynb: differs") for p in problems)
    assert any(p.startswith("01_b.ipynb: missing") for p in problems)


def test_course_notebooks_are_in_sync_with_solutions():
    assert solution_notebooks(SOLUTIONS), "no solution notebooks found"
    assert out_of_sync(SOLUTIONS, NOTEBOOKS) == [], "run `make notebooks` and commit the result"


def test_student_notebooks_hold_no_answers_and_no_outputs():
    for path in solution_notebooks(NOTEBOOKS):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            assert "### BEGIN SOLUTION" not in cell.source, path.name
            assert "execution" not in cell.metadata, f"{path.name}: solution-run timestamps"
            if cell.cell_type == "code":
                assert cell.outputs == [], f"{path.name}: student cells must have no output"
        assert "widgets" not in nb.metadata, f"{path.name}: the solution run's widget state"
