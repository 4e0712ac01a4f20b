"""Warm kernels (class grading): a kernel forked from the template starts with the course's
libraries loaded, never with the grader loaded, never with another notebook's state; it dies
with the process that asked for it; and without a template, kernels start the ordinary way."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import nbformat
import pytest
from nbclient import NotebookClient

from posenc.grading.core import GRADE_LOG_ENV
from posenc.grading.warm_kernels import WARM_KERNELS_ENV, WarmKernelTemplate, forked_kernel_manager

PROBE = """\
import json, os, sys
print(json.dumps({
    "ppid": os.getppid(),
    "torch_preloaded": "torch" in sys.modules,
    "grader_preloaded": "posenc.grading.core" in sys.modules,
    "leak": getattr(sys, "posenc_leak", None),
}))
sys.posenc_leak = "left by the previous notebook"
"""


@pytest.fixture(scope="module")
def template():
    t = WarmKernelTemplate(threads=1)
    assert t.ready(), "the template did not come up"
    yield t
    t.stop()
    assert not os.path.exists(t.socket_path)


def _run(cells, monkeypatch, socket_path, tmp_path, env=None):
    monkeypatch.setenv(WARM_KERNELS_ENV, socket_path)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    km = forked_kernel_manager()
    try:
        NotebookClient(nb, km=km, timeout=60).execute(cwd=str(tmp_path))
        pid = km.provisioner.pid
    finally:
        if km.has_kernel:
            km.shutdown_kernel(now=True)
    return nb, pid


def _probe(nb):
    return json.loads(nb.cells[0].outputs[0]["text"])


def test_forked_kernels_are_preloaded_and_do_not_share_state(template, monkeypatch, tmp_path):
    first, _ = _run([PROBE], monkeypatch, template.socket_path, tmp_path)
    second, _ = _run([PROBE], monkeypatch, template.socket_path, tmp_path)
    for nb in (first, second):
        seen = _probe(nb)
        assert seen["ppid"] == template.process.pid  # forked from the template, not started cold
        assert seen["torch_preloaded"]
        assert not seen["grader_preloaded"]
    assert _probe(second)["leak"] is None  # the first notebook's change died with its kernel


def test_a_forked_kernel_grades_into_its_own_log(template, monkeypatch, tmp_path):
    log = tmp_path / "log"
    log.touch()
    code = textwrap.dedent("""\
        import os
        import torch
        from posenc.grading import check
        def self_attention(x, w_q, w_k, w_v, causal=False):  # the library's earns no credit
            q, k, v = x @ w_q, x @ w_k, x @ w_v
            s = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
            if causal:
                s = s.masked_fill(torch.ones(s.shape[-2:], dtype=bool).triu(1), -torch.inf)
            return s.softmax(-1) @ v
        check("self_attention", self_attention)
        print(os.environ.get("POSENC_GRADE_LOG"))
    """)
    nb, _ = _run([code], monkeypatch, template.socket_path, tmp_path, {GRADE_LOG_ENV: str(log)})
    entry = json.loads(log.read_text().splitlines()[0])
    assert entry["name"] == "self_attention" and entry["passed"]
    assert nb.cells[0].outputs[-1]["text"].splitlines()[-1] == "None"  # hidden from the code


def test_a_forked_kernel_dies_with_the_process_that_asked_for_it(template, tmp_path):
    asker = textwrap.dedent(f"""\
        import os, sys
        os.environ[{WARM_KERNELS_ENV!r}] = {template.socket_path!r}
        from posenc.grading.warm_kernels import forked_kernel_manager
        km = forked_kernel_manager()
        km.start_kernel(cwd={str(tmp_path)!r})
        print(km.provisioner.pid, flush=True)
        os._exit(0)  # no shutdown: the kernel must notice by itself
    """)
    out = subprocess.run([sys.executable, "-c", asker], capture_output=True, text=True, timeout=60)
    kernel = int(out.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{kernel}"):
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{kernel}")


def test_without_a_template_kernels_start_cold(monkeypatch, tmp_path):
    nb, _ = _run([PROBE], monkeypatch, str(tmp_path / "no-such-socket"), tmp_path)
    seen = _probe(nb)
    assert not seen["torch_preloaded"]  # an ordinary, fresh kernel
    assert seen["ppid"] == os.getpid()


def test_a_bad_request_is_refused_and_the_template_serves_on(template, monkeypatch, tmp_path):
    for garbage in (b"not json", json.dumps({"kind": "shell", "argv": ["rm -rf /"]}).encode()):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(10)
            conn.connect(template.socket_path)
            conn.sendall(garbage)
            assert conn.recv(100) == b""  # closed without forking anything
    nb, _ = _run([PROBE], monkeypatch, template.socket_path, tmp_path)
    assert _probe(nb)["ppid"] == template.process.pid
