"""Load the answer functions that a solution notebook defines, to grade them in tests."""

from __future__ import annotations

from pathlib import Path

import nbformat

from posenc.course.notebook_tools import BEGIN


def solution_namespace(path: Path) -> dict:
    """Run the notebook's first code cell (imports) and every cell holding an answer."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    namespace: dict = {}
    for source in [code[0]] + [s for s in code[1:] if BEGIN in s]:
        exec(compile(source, str(path), "exec"), namespace)
    return namespace
