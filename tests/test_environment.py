"""environment.yml (conda) and pyproject.toml (pip) list the same packages; the torch pin
is the same in environment.yml and the Makefile."""

import re
import tomllib

import yaml
from conftest import ROOT


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^([A-Za-z0-9_.\-]+)(.*)$", requirement.strip()).groups()
    return name.lower().replace("_", "-"), spec.strip()


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _conda_pip() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return dict(_split(r) for r in pip if not r.startswith("-e"))


def test_same_package_names():
    assert set(_pyproject()) == set(_conda_pip())


def test_same_version_specs_except_the_torch_pin():
    py, conda = _pyproject(), _conda_pip()
    differing = {name for name in py if name != "torch" and py[name] != conda[name]}
    assert not differing, {name: (py[name], conda[name]) for name in differing}


def test_torch_pin_matches_makefile_default():
    makefile = (ROOT / "Makefile").read_text()
    default = re.search(r"^TORCH\s*\?=\s*(\S+)", makefile, re.M).group(1)
    assert _conda_pip()["torch"] == default.removeprefix("torch")


def test_conda_env_uses_python_311_and_installs_posenc():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip
