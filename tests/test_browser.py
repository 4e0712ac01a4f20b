"""The course in a real browser: JupyterLab from this env, driven by headless Chromium.

For solution notebooks 02 (sinusoidal), 04 (RoPE) and 10 (today's models), on a copy with its
outputs cleared: open it, Run → Run All Cells from the menu, wait until the kernel is idle, and
check that no cell raised, that every ✔ line stored in solutions/ shows on the page, and, in 02
and 04, that moving the first slider with the keyboard redraws the widget's figure. A
screenshot of each goes to artifacts/browser/ (git-ignored).

Needs Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it) and Playwright
from PyPI (the dev extra), which drives that Chromium: no browser is ever downloaded. Without
Chromium the test is skipped with a loud reason, and fails when ``CI=true``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest
from conftest import ROOT, SOLUTIONS

NOTEBOOKS_WITH_WIDGETS = ["02_sinusoidal", "04_rope"]
NOTEBOOKS = [*NOTEBOOKS_WITH_WIDGETS, "10_positions_in_todays_models"]  # 10 has no explorer
ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM_FLAGS = [  # headless as root, and quiet on a machine with no way out
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JavaScript run in the page; JupyterLab exposes its app as window.jupyterapp (we ask it to).
# Each function takes the notebook's path and finds its panel among the open documents.
_PANEL = """const app = window.jupyterapp;
  const nb = app && Array.from(app.shell.widgets('main'))
    .find(w => w.context && w.context.path === path && w.content);
  const kernel = nb && nb.sessionContext && nb.sessionContext.session
    && nb.sessionContext.session.kernel;"""
KERNEL_IDLE = f"""(path) => {{ {_PANEL}
  return !!kernel && kernel.status === 'idle';
}}"""
ALL_RAN = f"""(path) => {{ {_PANEL}
  if (!kernel || kernel.status !== 'idle') return false;
  const code = nb.content.widgets.filter(c => c.model.type === 'code');
  const failed = code.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
  return failed || code.every(c => c.model.executionCount !== null);
}}"""
ERRORS = f"""(path) => {{ {_PANEL}
  return nb.content.widgets.filter(c => c.model.type === 'code')
    .flatMap(c => c.model.outputs.toJSON())
    .filter(o => o.output_type === 'error')
    .map(o => o.ename + ': ' + o.evalue);
}}"""
FIGURE_CHANGED = """(before) => {
  const img = document.querySelector('.widget-interact img');
  return !!img && img.getAttribute('src') !== before;
}"""


def _chromium() -> str:
    """The system Chromium, or a loud skip (a failure under CI=true)."""
    for candidate in (os.environ.get("POSENC_CHROMIUM"), "chromium", "chromium-browser"):
        path = candidate and shutil.which(candidate)
        if path:
            return path
    message = (
        "BROWSER TEST NOT RUN: no Chromium found. Install Debian's chromium "
        "(sudo apt-get install chromium) or set POSENC_CHROMIUM to a Chromium binary."
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _expected_ticks(stem: str) -> list[str]:
    """The ✔ lines that solutions/ stores for this notebook's check cells."""
    nb = nbformat.read(SOLUTIONS / f"{stem}.ipynb", as_version=4)
    return [
        line
        for cell in nb.cells
        if str(cell.get("id", "")).startswith("check-")
        for out in cell.get("outputs", [])
        for line in out.get("text", "").splitlines()
        if line.startswith("✔")
    ]


def _write_cleared_copies(folder) -> None:
    """Copies of the widget notebooks with every output and execution count cleared."""
    folder.mkdir()
    for stem in NOTEBOOKS:
        nb = nbformat.read(SOLUTIONS / f"{stem}.ipynb", as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, folder / f"{stem}.ipynb")


def _start_lab(work, port: int, token: str, log) -> subprocess.Popen:
    """JupyterLab on 127.0.0.1 in its own process group, its state kept under ``work``."""
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(ROOT / ".jupyter" / "config"),  # no news pop-up
        IPYTHONDIR=str(ROOT / ".jupyter" / "ipython"),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
    )
    command = [
        *(sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root"),
        *("--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}"),
        f"--ServerApp.root_dir={work}",
        f"--LabApp.workspaces_dir={work / 'workspaces'}",
        "--LabApp.expose_app_in_browser=True",
    ]
    return subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_until_up(server: subprocess.Popen, url: str, log_path, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "JupyterLab did not start:\n" + log_path.read_text()[-2000:]
                ) from None
            time.sleep(0.2)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (the server and its kernels), then SIGKILL."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 (random port, random token) serving cleared copies of the
    notebooks; stopped by its pid (with its kernels) at the end."""
    chromium = _chromium()
    from jupyter_client.kernelspec import find_kernel_specs

    assert "posenc" in find_kernel_specs(), "the 'posenc' kernel is not registered: make env"
    work = tmp_path_factory.mktemp("lab")
    _write_cleared_copies(work / "solutions")
    (work / "results").symlink_to(ROOT / "results")  # the notebooks read ../results
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    with open(work / "server.log", "w") as log:
        server = _start_lab(work, port, token, log)
        try:
            _wait_until_up(server, f"{base}/api/status?token={token}", work / "server.log")
            yield {"base": base, "token": token, "chromium": chromium}
        finally:
            _stop(server)


@pytest.fixture(scope="module")
def browser(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=lab["chromium"], args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def _move_first_slider_and_see_a_redraw(page, path: str) -> None:
    """Press → twice on the first ipywidgets slider; its readout and figure must change."""
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    readout = page.locator(".widget-slider .widget-readout").first
    value_before = readout.inner_text()
    figure_before = page.locator(".widget-interact img").first.get_attribute("src")
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.wait_for_function(FIGURE_CHANGED, arg=figure_before, timeout=30_000)
    page.wait_for_function(KERNEL_IDLE, arg=path, timeout=30_000)
    assert readout.inner_text() != value_before


@pytest.mark.parametrize("stem", NOTEBOOKS)
def test_notebook_runs_in_jupyterlab_and_its_sliders_redraw(lab, browser, stem):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        path = f"solutions/{stem}.ipynb"
        # A workspace of its own, reset: only this notebook is open, nothing restored.
        page.goto(f"{lab['base']}/lab/workspaces/{stem}/tree/{path}?token={lab['token']}&reset")
        page.wait_for_function(KERNEL_IDLE, arg=path, timeout=60_000)

        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        page.wait_for_function(ALL_RAN, arg=path, timeout=240_000, polling=250)
        assert page.evaluate(ERRORS, path) == []

        expected = _expected_ticks(stem)
        assert expected, f"solutions/{stem}.ipynb stores no ✔ lines"
        for line in expected:
            tick = page.locator(".jp-OutputArea-output").get_by_text(line, exact=True)
            tick.scroll_into_view_if_needed()
            assert tick.is_visible(), f"not shown: {line}"

        if stem in NOTEBOOKS_WITH_WIDGETS:
            _move_first_slider_and_see_a_redraw(page, path)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{stem}.png"))
    finally:
        page.close()


def test_without_chromium_the_test_says_so_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("POSENC_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="BROWSER TEST NOT RUN"):
        _chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        _chromium()
