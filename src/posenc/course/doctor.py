"""``posenc doctor`` (also ``make doctor``): is this machine ready for the course?

Prints one line per requirement, OK or FAIL, with a fix for each FAIL; exits 1 on any FAIL.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from posenc.runtime import course_root

PACKAGES = (
    "jupyterlab",
    "ipykernel",
    "ipywidgets",
    "numpy",
    "matplotlib",
    "torch",
    "nbval",
    "nbformat",
    "nbclient",
    "tqdm",
)


@dataclass
class Finding:
    ok: bool
    name: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK    {self.name}: {self.detail}"
        return f"FAIL  {self.name}: {self.detail} — fix: {self.fix}"


def check_python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    return Finding(
        sys.version_info >= (3, 11),
        "python",
        version,
        "install Python 3.11 or newer and rerun `make lab`",
    )


def check_package(name: str) -> Finding:
    try:
        return Finding(True, name, metadata.version(name))
    except metadata.PackageNotFoundError:
        return Finding(False, name, "not installed", "rerun `make lab` (or `make test`)")


def check_torch_device() -> Finding:
    try:
        import torch
    except ImportError:
        return Finding(False, "torch device", "torch cannot be imported", "rerun `make lab`")
    if torch.cuda.is_available():
        return Finding(True, "torch device", f"CUDA: {torch.cuda.get_device_name(0)}")
    return Finding(True, "torch device", f"CPU (torch {torch.__version__}; no CUDA device)")


def check_kernel(name: str = "posenc") -> Finding:
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return Finding(
        name in specs,
        "jupyter kernel",
        f"'{name}' registered" if name in specs else f"'{name}' not registered",
        f"{sys.executable} -m ipykernel install --sys-prefix --name {name}",
    )


def check_results_writable(folder: Path | None = None) -> Finding:
    folder = folder or course_root() / "results"
    try:
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
        return Finding(True, "results folder", f"{folder} is writable")
    except OSError as err:
        return Finding(
            False,
            "results folder",
            f"{folder}: {err.strerror or err}",
            f"create {folder} and make it writable",
        )


def check_notebooks_in_sync(root: Path | None = None) -> Finding:
    from posenc.course.notebook_tools import out_of_sync

    root = root or course_root()
    problems = out_of_sync(root / "solutions", root / "notebooks")
    if not problems:
        return Finding(True, "notebooks", "in sync with solutions/")
    return Finding(
        False,
        "notebooks",
        f"{len(problems)} out of sync ({problems[0]})",
        "run `make notebooks` (your own work in notebooks/ is overwritten: copy it first)",
    )


def check_bwrap() -> Finding:
    """bubblewrap, the jail `posenc grade` runs each submission in."""
    from posenc.grading.jail import bwrap_works

    works, why = bwrap_works()
    return Finding(
        works,
        "bwrap (class grading jail)",
        "starts a jailed Python" if works else why,
        "apt-get install bubblewrap (only teachers grading a class need it)",
    )


def run_checks(checks: list[Callable[[], Finding]] | None = None) -> list[Finding]:
    checks = checks or [
        check_python,
        *(lambda n=n: check_package(n) for n in PACKAGES),
        check_torch_device,
        check_kernel,
        check_results_writable,
        check_notebooks_in_sync,
        check_bwrap,
    ]
    findings = []
    for check in checks:
        try:
            findings.append(check())
        except Exception as err:  # a broken check is itself a finding
            findings.append(
                Finding(
                    False,
                    getattr(check, "__name__", "check"),
                    f"{type(err).__name__}: {err}",
                    "see the message",
                )
            )
    return findings


def main(argv: list[str] | None = None) -> int:
    findings = run_checks()
    for finding in findings:
        print(finding.line())
    failed = sum(not f.ok for f in findings)
    print(f"{len(findings) - failed}/{len(findings)} OK" + (f", {failed} to fix" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
