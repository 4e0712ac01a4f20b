"""`posenc grade` on a small fake class: every kind of submission gets the right verdict,
the batch completes, -j 2 agrees with -j 1, and the submissions are never written."""

import copy
import csv
import hashlib
import json

import nbformat
import pytest
from conftest import NOTEBOOKS, SOLUTIONS

from posenc.grading.classroom import csv_safe, grade_class, main, select_shard, write_report

NB = "00_attention_has_no_order"
FORGE = (
    "import json, os\n"
    "open(os.environ.get('POSENC_GRADE_LOG', '/dev/null'), 'a').write(json.dumps("
    "{'name': 'self_attention', 'passed': True, 'n_passed': 8, 'n_total': 8, 'hint': ''}))"
)


def _cell(nb, cell_id):
    return next(c for c in nb.cells if c.get("id") == cell_id)


def _answer_cell(nb):
    return next(c for c in nb.cells if "def self_attention" in c.source)


def make_class(root):
    """One folder per fake student, each with notebook 00 in some state."""
    solution = nbformat.read(SOLUTIONS / f"{NB}.ipynb", as_version=4)
    blank = nbformat.read(NOTEBOOKS / f"{NB}.ipynb", as_version=4)

    def save(student, nb, name=f"{NB}.ipynb"):
        (root / student).mkdir(parents=True)
        nbformat.write(nb, root / student / name)

    save("correct", solution)
    save("blank", blank)
    wrong = copy.deepcopy(solution)
    _answer_cell(wrong).source = _answer_cell(wrong).source.replace(" / math.sqrt(q.shape[-1])", "")
    save("wrong", wrong)
    fake = copy.deepcopy(blank)
    _cell(fake, "check-self_attention").source = 'print("✔ self_attention: 8/8 checks passed")'
    save("fake_tick", fake)
    deleted = copy.deepcopy(solution)
    deleted.cells = [c for c in deleted.cells if c.get("id") != "check-self_attention"]
    save("deleted_check", deleted)
    trivial = copy.deepcopy(blank)
    _cell(
        trivial, "check-self_attention"
    ).source = 'check("self_attention", lambda *a: 0, raises=False)'
    save("trivial_check", trivial)
    loop = copy.deepcopy(solution)
    _answer_cell(loop).source = _answer_cell(loop).source.replace(
        "    ### BEGIN SOLUTION", "    while True:\n        pass\n    ### BEGIN SOLUTION"
    )
    save("infinite_loop", loop)
    (root / "bad_json").mkdir()
    (root / "bad_json" / f"{NB}.ipynb").write_text("{ not a notebook")
    killer = copy.deepcopy(solution)
    killer.cells.insert(2, nbformat.v4.new_code_cell("import os\nos._exit(1)", id="killer"))
    save("kills_kernel", killer)
    loud = copy.deepcopy(solution)
    loud.cells.insert(2, nbformat.v4.new_code_cell('print("x" * 5_000_000)', id="loud"))
    save("enormous_output", loud)
    forger = copy.deepcopy(blank)
    forger.cells.append(nbformat.v4.new_code_cell(FORGE, id="forger"))
    save("forger", forger)


def _digest(root):
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    make_class(root)
    before = _digest(root)
    grades = grade_class(root, jobs=2, timeout_cell=5, timeout_notebook=20, show_progress=False)
    return root, before, {g.student: g for g in grades}


def _statuses(grade):
    return {v.exercise: v.status for v in grade.exercises}


def test_every_student_gets_the_right_verdict(graded):
    root, before, by = graded
    assert _statuses(by["correct"]) == {
        "self_attention": "passed",
        "permutation_equivariance_gap": "passed",
    }
    assert set(_statuses(by["blank"]).values()) == {"not attempted"}
    assert _statuses(by["wrong"])["self_attention"] == "failed"
    assert "not scaled" in by["wrong"].exercises[0].hint
    assert _statuses(by["fake_tick"])["self_attention"] == "not attempted"
    assert any("altered" in f for f in by["fake_tick"].flags)
    assert _statuses(by["deleted_check"])["self_attention"] == "passed"
    assert any("removed" in f for f in by["deleted_check"].flags)
    assert _statuses(by["trivial_check"])["self_attention"] == "not attempted"
    assert any("altered" in f for f in by["trivial_check"].flags)
    assert _statuses(by["infinite_loop"])["self_attention"] == "timeout"
    assert by["bad_json"].status == "unreadable"
    # The cell that ends its process is dropped; the notebook's exercises are still graded.
    assert set(_statuses(by["kills_kernel"]).values()) == {"passed"}
    assert any("cell 1 skipped" in f for f in by["kills_kernel"].flags)
    assert set(_statuses(by["enormous_output"]).values()) == {"passed"}
    assert _statuses(by["forger"])["self_attention"] == "not attempted"
    assert any("suspicious" in f for f in by["forger"].flags)
    assert not any("suspicious" in f for f in by["correct"].flags + by["blank"].flags)


def test_submissions_are_never_written(graded):
    root, before, _ = graded
    assert _digest(root) == before


def test_parallel_serial_and_unjailed_agree_and_report_files(graded, tmp_path):
    root, _, by = graded
    subset = tmp_path / "subset"
    for student in ("correct", "blank", "wrong"):
        (subset / student).mkdir(parents=True)
        (subset / student / f"{NB}.ipynb").write_bytes(
            (root / student / f"{NB}.ipynb").read_bytes()
        )
    serial = grade_class(subset, jobs=1, show_progress=False)
    assert [(g.student, _statuses(g)) for g in serial] == [
        (s, _statuses(by[s])) for s in ("blank", "correct", "wrong")
    ]
    unjailed = grade_class(subset, jobs=1, show_progress=False, jailed=False)
    assert [(g.student, _statuses(g)) for g in unjailed] == [
        (g.student, _statuses(g)) for g in serial
    ]
    assert all(any("UNSAFE" in f for f in g.flags) for g in unjailed)
    assert not any(any("UNSAFE" in f for f in g.flags) for g in serial)
    write_report(serial, tmp_path / "report")
    rows = list(csv.DictReader(open(tmp_path / "report" / "grades.csv", encoding="utf-8")))
    assert {(r["student"], r["exercise"], r["status"]) for r in rows} >= {
        ("correct", "self_attention", "passed"),
        ("wrong", "self_attention", "failed"),
    }
    saved = json.loads((tmp_path / "report" / "grades.json").read_text())
    assert {g["student"] for g in saved} == {"blank", "correct", "wrong"}


def test_csv_cells_never_start_a_formula():
    for text in ("=HYPERLINK(1)", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert csv_safe(text) == "'" + text
    assert csv_safe("alice") == "alice" and csv_safe(3) == 3


def test_shards_partition_the_class():
    students = [f"s{i:02d}" for i in range(7)]
    shards = [select_shard(students, f"{i}/3") for i in (1, 2, 3)]
    assert set().union(*shards) == set(students) and sum(map(len, shards)) == 7
    with pytest.raises(ValueError, match="shard"):
        select_shard(students, "4/3")


def test_without_bwrap_the_grader_refuses_unless_told_to_run_unjailed(tmp_path, monkeypatch):
    from posenc.grading import classroom

    monkeypatch.setattr(classroom, "bwrap_path", lambda: None)
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "r")])
    assert main([str(tmp_path), "--out", str(tmp_path / "r"), "--unsafe-no-jail"]) == 0


def test_cli_refuses_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing"), "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "r"), "-j", "0"])


def test_resume_grades_only_what_the_report_lacks(graded, tmp_path):
    root, _, _ = graded
    subset, out = tmp_path / "subset", tmp_path / "report"
    (subset / "correct").mkdir(parents=True)
    (subset / "correct" / f"{NB}.ipynb").write_bytes(
        (root / "correct" / f"{NB}.ipynb").read_bytes()
    )
    assert main([str(subset), "--out", str(out)]) == 0
    saved = json.loads((out / "grades.json").read_text())
    saved[0]["error"] = "kept from the first run"
    (out / "grades.json").write_text(json.dumps(saved))
    (subset / "blank").mkdir()
    (subset / "blank" / f"{NB}.ipynb").write_bytes((root / "blank" / f"{NB}.ipynb").read_bytes())
    assert main([str(subset), "--out", str(out), "--resume"]) == 0
    by = {g["student"]: g for g in json.loads((out / "grades.json").read_text())}
    assert by["correct"]["error"] == "kept from the first run"  # not graded again
    assert {v["status"] for v in by["blank"]["exercises"]} == {"not attempted"}


def test_plain_data_round_trips_and_malformed_data_is_refused():
    import math

    import torch

    from posenc.grading import wire

    value = {
        "t": [torch.arange(6, dtype=dt).reshape(2, 3) for dt in (torch.float32, torch.bfloat16)],
        1: (None, True, 2, float("nan"), "x", torch.int64),
        "empty": torch.zeros(0, 4),
    }
    back = wire.decode(json.loads(json.dumps(wire.encode(value))))
    assert torch.equal(back["t"][1], value["t"][1]) and back["t"][1].dtype == torch.bfloat16
    assert back[1][:3] == (None, True, 2) and math.isnan(back[1][3]) and back[1][5] is torch.int64
    assert back["empty"].shape == (0, 4)

    class Liar(torch.Tensor):
        pass

    sent = wire.decode(wire.encode(torch.ones(2).as_subclass(Liar)))
    assert type(sent) is torch.Tensor  # a subclass crosses as its plain data
    assert type(wire.decode(wire.encode(object()))).__name__ == "object"  # only the type name
    bad = [
        {"$tensor": ["object", [1], ""]},
        {"$tensor": ["float32", [2], "AAAA"]},  # 3 bytes for 8
        {"$exec": "print(1)"},
        1 << 70,
    ]
    deep = []
    for _ in range(wire.MAX_DEPTH + 5):
        deep = [deep]
    for data in [*bad, deep]:
        with pytest.raises(wire.WireError):
            wire.decode(data)


def test_the_jail_view_hides_the_reference_and_the_graders(tmp_path):
    import subprocess
    import sys

    from posenc.grading.jail import build_view

    view = build_view(tmp_path, ("posenc.sinusoidal.sinusoidal_encoding",))
    probe = (
        "import posenc.grading as g, posenc.sinusoidal as s\n"
        "print(hasattr(g, 'run_cases'), hasattr(s, 'sinusoidal_offset_matrix'))\n"
        "s.sinusoidal_encoding(4, 8)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(view), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.stdout.split() == ["False", "True"]
    assert "ReferenceHidden: posenc.sinusoidal.sinusoidal_encoding is hidden" in run.stderr
    assert not (view / "posenc" / "grading" / "core.py").exists()
