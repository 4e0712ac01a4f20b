"""`posenc grade` on a hostile class (built by tests/hostile_class.py), at -j 1 and -j 2: no
cheat gets credit, every honest verdict is what a clean class gets, nothing outside the jails
changes, and the report is complete and safe to open."""

import csv
import hashlib
import json
from pathlib import Path

import pytest
from conftest import ROOT
from hostile_class import PWNED, build

from posenc.grading.classroom import main
from posenc.grading.core import REGISTRY

# The references of notebook 02 and 04's exercises, for the jail to hide, where the graders do
# not yet name them (Exercise.off_limits).
REFERENCES = {
    "sinusoidal_encoding": ("posenc.sinusoidal.sinusoidal_encoding",),
    "sinusoidal_offset_matrix": ("posenc.sinusoidal.sinusoidal_offset_matrix",),
    "relative_dot_product_curve": ("posenc.sinusoidal.relative_dot_product_curve",),
    "rope_frequencies": ("posenc.rope.rope_frequencies",),
    "apply_rope": ("posenc.rope.apply_rope",),
}
HONEST = ("honest_a", "honest_b", "honest_wrong", "honest_blank", '=HYPERLINK("http:__x","click")')
CHEATS = (
    "cheat_reference",
    "cheat_patched_comparisons",
    "cheat_tensor_subclass",
    "cheat_patched_grader",
    "cheat_grader_note",
    "vandal",
)
ARGS = ["--timeout-cell", "3", "--timeout-notebook", "60"]


def _digest(*roots):
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for root in roots
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and "__pycache__" not in p.parts
    }


def _course():
    return [ROOT / name for name in ("src", "solutions", "notebooks", "results")]


def _report(out):
    grades = {g["student"]: g for g in json.loads((out / "grades.json").read_text())}
    rows = list(csv.reader(open(out / "grades.csv", encoding="utf-8", newline="")))
    return grades, rows


@pytest.fixture(scope="module")
def hidden_references():
    saved = {name: REGISTRY[name].off_limits for name in REFERENCES}
    for name, refs in REFERENCES.items():
        REGISTRY[name].off_limits = saved[name] or refs
    yield
    for name, refs in saved.items():
        REGISTRY[name].off_limits = refs


@pytest.fixture(scope="module")
def clean(tmp_path_factory, hidden_references):
    root = tmp_path_factory.mktemp("clean")
    build(root / "class", root / "report", clean=True)
    assert main([str(root / "class"), "--out", str(root / "report"), "-j", "2", *ARGS]) == 0
    return _report(root / "report")[0]


@pytest.fixture(scope="module", params=[1, 2], ids=["j1", "j2"])
def hostile(request, tmp_path_factory, hidden_references):
    root = tmp_path_factory.mktemp(f"hostile-j{request.param}")
    report = root / "report"
    report.mkdir()
    (report / "teacher_notes.txt").write_text("kept")
    build(root / "class", report)
    before = _digest(root / "class", report, *_course())
    jobs = str(request.param)
    assert main([str(root / "class"), "--out", str(report), "-j", jobs, *ARGS]) == 0
    after = _digest(root / "class", report, *_course())
    return root, before, after, _report(report)


def _statuses(grade):
    return {v["exercise"]: v["status"] for v in grade["exercises"]}


def test_no_cheat_gets_credit_and_reference_use_is_named(hostile):
    *_, (grades, _) = hostile
    for cheat in CHEATS:
        assert _statuses(grades[cheat])["sinusoidal_encoding"] != "passed", cheat
    reference = grades["cheat_reference"]["exercises"][0]
    assert reference["status"] == "failed" and "uses reference" in reference["hint"]
    assert "posenc.sinusoidal.sinusoidal_encoding" in reference["hint"]
    assert "uses reference: sinusoidal_encoding" in grades["cheat_reference"]["flags"]
    assert any("suspicious" in f for f in grades["cheat_patched_grader"]["flags"])


def test_honest_verdicts_are_those_of_a_clean_class(hostile, clean):
    *_, (grades, _) = hostile
    for student in HONEST:
        assert grades[student]["exercises"] == clean[student]["exercises"], student
    assert set(_statuses(clean["honest_a"]).values()) == {"passed"}
    assert set(_statuses(clean["honest_b"]).values()) == {"passed"}
    assert _statuses(clean["honest_wrong"])["sinusoidal_offset_matrix"] == "failed"


def test_nothing_outside_the_jails_changes(hostile):
    root, before, after, _ = hostile
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed <= {str(root / "report" / n) for n in ("grades.csv", "grades.json")}
    assert not list(ROOT.rglob(PWNED)) and not list(root.rglob(PWNED))
    assert not (Path.home() / ".ipython" / "profile_default" / "startup" / PWNED).exists()
    assert (root / "report" / "teacher_notes.txt").read_text() == "kept"


def test_time_limits_and_dead_workers_cost_one_cell(hostile):
    *_, (grades, _) = hostile
    for student in ("time_sleep_and_busy", "time_ignores_alarm", "exits"):
        assert set(_statuses(grades[student]).values()) == {"passed"}, student
    assert any("skipped" in f for f in grades["time_ignores_alarm"]["flags"])


def test_bad_files_are_error_rows_that_quote_nothing(hostile):
    root, *_, (grades, rows) = hostile
    for student in ("symlink_classmate", "symlink_passwd"):
        assert grades[student]["status"] == "unreadable"
        assert "symbolic link" in grades[student]["error"]
    assert "too deep" in grades["deep_json"]["error"]
    assert "root:" not in (root / "report" / "grades.csv").read_text()


def test_the_report_is_complete_and_safe_to_open(hostile):
    root, *_, (grades, rows) = hostile
    students = {p.name for p in (root / "class").iterdir()}
    assert set(grades) == students
    assert {r[0] for r in rows[1:]} == {"'" + s if s.startswith("=") else s for s in students}
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for cell in r)
    note = grades["cheat_grader_note"]["exercises"][0]["hint"]
    assert "[student's text: 'GRADER NOTE" in note
    assert grades["honest_a"]["student_supplied"] == ["student", "file"]
