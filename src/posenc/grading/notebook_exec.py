"""Execute one notebook in a fresh kernel and write a summary of its cells (a child process of
the class grader, kept free of heavy imports so that it starts fast).

    python -m posenc.grading.notebook_exec NOTEBOOK SUMMARY_JSON TIMEOUT_CELL
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def execute_and_summarise(nb_path: str, summary_path: str, timeout_cell: int) -> None:
    """Run in a child process: execute the notebook, write a summary of each cell."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    from posenc.course.notebook_tools import kernel_manager

    path = Path(nb_path)
    nb = nbformat.read(path, as_version=4)
    km = kernel_manager()
    pid_file = Path(summary_path).with_suffix(".pid")
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout_cell,
        allow_errors=True,
        interrupt_on_timeout=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.on_notebook_start = lambda **_: pid_file.write_text(str(km.provisioner.pid))
    died = ""
    try:
        client.execute(cwd=str(path.parent))
    except DeadKernelError as err:
        died = f"the kernel died ({str(err).strip()[:80] or 'exited'})"
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        cells.append(
            {
                "id": cell.get("id"),
                "ran": cell.get("execution_count") is not None or bool(cell.get("outputs")),
                "error": f"{errors[0]['ename']}: {errors[0]['evalue']}"[:200] if errors else "",
            }
        )
    Path(summary_path).write_text(json.dumps({"cells": cells, "died": died}))


if __name__ == "__main__":
    execute_and_summarise(sys.argv[1], sys.argv[2], int(sys.argv[3]))
