"""posenc doctor: OK on a ready machine, FAIL with a fix when something is off."""

import sys

from posenc.course import doctor


def test_ready_machine_passes_every_check(capsys):
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "OK    torch:" in out and "OK    jupyter kernel" in out
    assert "OK    bwrap (class grading jail)" in out


def test_failures_name_a_fix(tmp_path, monkeypatch):
    assert not doctor.check_package("no-such-package-xyz").ok
    assert "make lab" in doctor.check_package("no-such-package-xyz").fix
    missing = doctor.check_results_writable(tmp_path / "nowhere")
    assert not missing.ok and missing.fix
    (tmp_path / "solutions").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "00_x.ipynb").write_text("{}")
    stale = doctor.check_notebooks_in_sync(tmp_path)
    assert not stale.ok and "make notebooks" in stale.fix
    assert not doctor.check_kernel("no-such-kernel-xyz").ok
    monkeypatch.setattr(sys, "version_info", (3, 10, 0))
    assert not doctor.check_python().ok


def test_a_missing_bwrap_is_a_failure_with_a_fix(monkeypatch):
    from posenc.grading import jail

    monkeypatch.setattr(jail.shutil, "which", lambda name: None)
    finding = doctor.check_bwrap()
    assert not finding.ok and "not installed" in finding.detail
    assert "apt-get install bubblewrap" in finding.fix


def test_any_failure_makes_the_exit_code_nonzero(monkeypatch, capsys):
    monkeypatch.setattr(doctor, "PACKAGES", doctor.PACKAGES + ("no-such-package-xyz",))
    assert doctor.main([]) == 1
    assert "FAIL  no-such-package-xyz" in capsys.readouterr().out
