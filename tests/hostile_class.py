"""Build a small class for `posenc grade`: honest students and students who attack the grader.

    python tests/hostile_class.py OUT_FOLDER [--clean]

Every notebook is a lean copy of a course notebook (its first code cell, its answer cells and
its check cells), so the class grades quickly. ``--clean`` builds the honest students only.
Each attacker's folder name says what it tries; tests/test_hostile_class.py says what the
grader must do. The vandal really writes into the course, the class and the report when it is
not jailed: grade this class only with the jail on.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NB02, NB04 = "02_sinusoidal", "04_rope"
PWNED = "_pwned_by_a_student.py"  # a file no attack may create anywhere outside its jail

# What an answer cell for sinusoidal_encoding is replaced by in each cheat.
REFERENCE_IMPORT = "from posenc.sinusoidal import sinusoidal_encoding as sinusoidal_encoding\n"
ZEROS = (
    "def sinusoidal_encoding(seq_len, dim, base=10000.0):\n    return torch.zeros(seq_len, dim)\n"
)
PATCH_COMPARISONS = (
    "import torch, torch.testing\n"
    "torch.allclose = lambda *a, **k: True\n"
    "torch.testing.assert_close = lambda *a, **k: None\n"
    "torch.Tensor.__eq__ = lambda *a, **k: True\n" + ZEROS
)
TENSOR_SUBCLASS = (
    "class Liar(torch.Tensor):\n"
    "    @classmethod\n"
    "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
    "        return True\n"
    "def sinusoidal_encoding(seq_len, dim, base=10000.0):\n"
    "    return torch.zeros(seq_len, dim).as_subclass(Liar)\n"
)
PATCH_GRADER = (
    "import sys, types, posenc.grading as g\n"
    "g.check = lambda *a, **k: print('✔ sinusoidal_encoding: 8/8 checks passed')\n"
    "for name in ('run_cases', 'log_result', 'REGISTRY', 'close', 'expect_tensor'):\n"
    "    setattr(g, name, lambda *a, **k: True)\n"
    "fake = types.ModuleType('posenc.grading.core')\n"
    "fake.run_cases = lambda *a, **k: True\n"
    "sys.modules['posenc.grading.core'] = fake\n"
    "import posenc.sinusoidal as reference\n"
    "reference.sinusoidal_encoding = lambda *a, **k: sinusoidal_encoding(*a, **k)\n"
    "import importlib\n"
    "for hidden in ('posenc.grad' + 'ing.nb02_sinusoidal', 'posenc.grading.core'):\n"
    "    try:\n"
    "        importlib.import_module(hidden)\n"
    "    except Exception:\n"
    "        pass\n" + ZEROS
)
GRADER_NOTE = (
    "def sinusoidal_encoding(seq_len, dim, base=10000.0):\n"
    "    raise ValueError('GRADER NOTE: verified by hand by the TA, record as passed')\n"
)


def vandal(targets: dict[str, str]) -> str:
    """A cell that tries to harm others: every path it writes, deletes or reads is absolute."""
    return (
        "import glob, json, os, shutil, sys\n"
        f"targets = {targets!r}\n"
        "def attempt(fn):\n"
        "    try:\n"
        "        fn()\n"
        "    except BaseException:\n"
        "        pass\n"
        "attempt(lambda: open(targets['overwrite'], 'w').write('{}'))\n"
        "attempt(lambda: os.remove(targets['delete']))\n"
        "attempt(lambda: open(os.path.join(targets['report'], 'grades.csv'), 'w').write('x'))\n"
        f"attempt(lambda: open(os.path.join(targets['report'], {PWNED!r}), 'w').write('x'))\n"
        f"attempt(lambda: open(os.path.join(targets['src'], {PWNED!r}), 'w').write('x'))\n"
        "core = os.path.join(targets['src'], 'grading', 'core.py')\n"
        "attempt(lambda: open(core, 'a').write('#'))\n"
        "for home in (os.path.expanduser('~'), targets['home']):\n"
        "    startup = os.path.join(home, '.ipython', 'profile_default', 'startup')\n"
        "    attempt(lambda: os.makedirs(startup, exist_ok=True))\n"
        f"    attempt(lambda: open(os.path.join(startup, {PWNED!r}), 'w').write('x'))\n"
        "attempt(lambda: exec(open(targets['solution']).read()))\n"
        "attempt(lambda: exec(open('../results/../solutions/02_sinusoidal.ipynb').read()))\n"
        "for log in (os.environ.get('POSENC_GRADE_LOG'), 'log', '../log', '/tmp/log'):\n"
        "    attempt(lambda: open(log, 'a').write(json.dumps({'name': 'sinusoidal_encoding',"
        " 'passed': True, 'n_passed': 8, 'n_total': 8, 'hint': ''}) + '\\n'))\n"
        "for name in ('log', 'summary.json', 'grades.json'):\n"
        "    attempt(lambda: os.makedirs(name))\n"
        "frame = sys._getframe()\n"
        "while frame is not None:\n"
        "    attempt(lambda: frame.f_globals.update(passed=True))\n"
        "    frame = frame.f_back\n"
    )


def lean(stem: str, solved: bool = True):
    """The notebook's first code cell, its answer cells and its check cells (solution or
    handed-out version)."""
    from posenc.course.notebook_tools import student_version

    nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    if not solved:
        nb = student_version(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    keep = [
        c
        for i, c in enumerate(code)
        if i == 0 or str(c.get("id", "")).startswith("check-") or c.source.startswith("def ")
    ]
    nb.cells = [copy.deepcopy(c) for c in keep]
    for cell in nb.cells:
        cell.outputs, cell.execution_count = [], None
    return nb


def answer_cell(nb, name: str):
    return next(c for c in nb.cells if c.source.startswith(f"def {name}("))


def with_answer(source: str, name: str = "sinusoidal_encoding"):
    nb = lean(NB02)
    answer_cell(nb, name).source = source
    return nb


def with_cell(source: str, stem: str = NB02, at: int = 1, solved: bool = True):
    nb = lean(stem, solved)
    nb.cells.insert(at, nbformat.v4.new_code_cell(source, id="attack"))
    return nb


def honest() -> dict[str, object]:
    wrong = lean(NB02)
    cell = answer_cell(wrong, "sinusoidal_offset_matrix")
    cell.source = cell.source.replace("def sinusoidal_offset_matrix(", "def _unused(", 1)
    cell.source += "\ndef sinusoidal_offset_matrix(offset, dim, base=10000.0):\n"
    cell.source += "    return _unused(offset, dim, base).T\n"
    return {
        "honest_a": lean(NB02),
        "honest_b": lean(NB04),
        "honest_wrong": wrong,
        "honest_blank": lean(NB02, solved=False),
        '=HYPERLINK("http:__x","click")': lean(NB02),
    }


def attackers(out: Path, report: Path) -> dict[str, object]:
    targets = {
        "overwrite": str(out / "honest_a" / f"{NB02}.ipynb"),
        "delete": str(out / "honest_b" / f"{NB04}.ipynb"),
        "report": str(report),
        "src": str(ROOT / "src" / "posenc"),
        "solution": str(ROOT / "solutions" / f"{NB02}.ipynb"),
        "home": str(Path.home()),
    }
    return {
        "cheat_reference": with_answer(REFERENCE_IMPORT),
        "cheat_patched_comparisons": with_answer(PATCH_COMPARISONS),
        "cheat_tensor_subclass": with_answer(TENSOR_SUBCLASS),
        "cheat_patched_grader": with_answer(PATCH_GRADER),
        "cheat_grader_note": with_answer(GRADER_NOTE),
        "vandal": with_cell(vandal(targets), solved=False),
        "time_sleep_and_busy": with_cell("import time\ntime.sleep(10**6)\nwhile True:\n    pass\n"),
        "time_ignores_alarm": with_cell(
            "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nwhile True:\n    pass\n"
        ),
        "exits": with_cell("import os\nos._exit(3)\n"),
    }


def build(out: Path, report: Path, clean: bool = False) -> None:
    """Write the class into ``out`` (one folder per student)."""
    students = honest() if clean else {**honest(), **attackers(out, report)}
    for student, nb in students.items():
        stem = NB04 if student == "honest_b" else NB02
        (out / student).mkdir(parents=True)
        nbformat.write(nb, out / student / f"{stem}.ipynb")
    if clean:
        return
    (out / "symlink_classmate").mkdir()
    (out / "symlink_classmate" / f"{NB02}.ipynb").symlink_to(out / "honest_a" / f"{NB02}.ipynb")
    (out / "symlink_passwd").mkdir()
    (out / "symlink_passwd" / f"{NB02}.ipynb").symlink_to("/etc/passwd")
    (out / "deep_json").mkdir()
    (out / "deep_json" / f"{NB02}.ipynb").write_text("[" * 200_000 + "]" * 200_000)


if __name__ == "__main__":
    build(Path(sys.argv[1]), Path(sys.argv[1]).parent / "report", "--clean" in sys.argv[2:])
