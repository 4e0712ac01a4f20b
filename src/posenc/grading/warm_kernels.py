"""Warm Jupyter kernels: fork each kernel from a template that has imported the slow libraries.

A Jupyter kernel whose first cell imports torch, NumPy and matplotlib spends a few seconds on
it. Here one *template* process imports all of it once and then waits; each kernel is
``fork()``-ed from it, so it starts with those modules already loaded. (Class grading runs
notebooks in its own jailed workers, which use the same trick: :mod:`posenc.grading.worker`.)

Why one student's state cannot reach another's: the template never runs student code (it only
imports libraries and forks), and a forked child is a copy, so whatever a kernel does dies with
it. Each kernel is used for exactly one notebook. What the children share is the template's
pristine state, the same as a fresh ``import`` gives. The grader itself (``posenc.grading``)
is never imported by the template: each kernel imports it, and so reads its own log path.

Pieces:

- ``python -m posenc.grading.warm_kernels SOCKET``: the template; it serves fork requests on a Unix
  socket until the process that started it goes away.
- :class:`WarmKernelTemplate`: starts and stops a template from the grading worker.
- :func:`request_fork`: ask the template for a "kernel".
- :class:`ForkedProvisioner`: a ``jupyter_client`` kernel provisioner that asks the template
  for the kernel (its socket comes in ``$POSENC_WARM_KERNELS``) and starts an ordinary kernel
  when no template is running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from jupyter_client.provisioning import LocalProvisioner

from posenc.grading.threads import thread_env

WARM_KERNELS_ENV = "POSENC_WARM_KERNELS"  # the template's socket, for the provisioner
PROVISIONER_NAME = "posenc-forked"
_PRELOAD = (  # what the course notebooks and the notebook runner import; slow to import
    "nbclient",
    "nbformat",
    "torch",
    "torch._dynamo",  # torch.optim's first optimizer imports it: 1.5 s, once per kernel
    "numpy",
    "matplotlib.pyplot",
    "ipywidgets",
    "tqdm.auto",
    "ipykernel.kernelapp",
    "posenc.attention",
    "posenc.course.viz",
)


# --- the template process --------------------------------------------------------------------


def _reap_children(*_: Any) -> None:
    """SIGCHLD: collect the exit status of finished kernels so none lingers as a zombie."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _take_over(request: dict[str, Any], fds: list[int], listener: socket.socket) -> None:
    """In a forked child: leave the template's duties and take the request's environment,
    folder and output streams, in a process group of its own (so that the grader can kill it
    with everything it starts)."""
    listener.close()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    for target, fd in zip((1, 2), fds, strict=False):
        os.dup2(fd, target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    threads = os.environ.get("OMP_NUM_THREADS")
    if threads and threads.isdigit():
        import torch

        torch.set_num_threads(int(threads))
    requester = int(request.get("requester", 0))
    if requester:  # it is not our parent, so only a watcher can tell that it died
        threading.Thread(target=_exit_when_gone, args=(requester,), daemon=True).start()


def _run_kernel(argv: list[str]) -> None:
    """Become an ipykernel, as ``python -m ipykernel_launcher ARGV`` would."""
    sys.argv = ["ipykernel_launcher", *argv]
    from ipykernel.kernelapp import IPKernelApp

    # IPKernelApp read JPY_PARENT_PID when the template imported it; its own parent poller gets
    # the template instead, so a kernel also exits when the template dies.
    IPKernelApp.launch_instance(argv=argv, parent_handle=os.getppid())


_RUN = {"kernel": _run_kernel}


def _exit_when_gone(pid: int) -> None:
    """Exit this process once process ``pid`` has ended (a zombie counts as ended)."""
    watched = ForkedProcess(pid)
    while watched.poll() is None:
        time.sleep(1.0)
    os._exit(1)


def serve(socket_path: str) -> None:
    """The template: import the course's libraries once, then fork one kernel per request.

    A request is one JSON line ``{"argv": [...], "env": {...}, "cwd": "...", "requester": pid}``
    sent with the requester's stdout and stderr as file descriptors; the reply is
    ``{"pid": N}``.
    """
    import importlib

    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for name in _PRELOAD:
        importlib.import_module(name)
    # The grader reads its log path from the environment when posenc.grading is first imported;
    # that import must happen in each kernel, never here.
    if "posenc.grading.core" in sys.modules:
        raise RuntimeError("the warm-kernel template must not import posenc.grading")
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher does: the kernel's folder is not an import path
    parent = os.getppid()
    signal.signal(signal.SIGCHLD, _reap_children)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)  # in a folder only this user can enter (mkdtemp: mode 0700)
    listener.listen(8)
    listener.settimeout(1.0)
    try:
        _serve_forever(listener, parent)
    finally:  # tidy up even when the grading worker ended without stopping us
        listener.close()
        _remove_socket(socket_path)


def _serve_forever(listener: socket.socket, parent: int) -> None:
    while os.getppid() == parent:  # the worker that started us is gone: so are we
        try:
            conn, _ = listener.accept()
        except (TimeoutError, InterruptedError):
            continue
        with conn:
            conn.settimeout(10)
            fds: list[int] = []
            try:
                message, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 2)
                request = json.loads(message)
                if request.get("kind") not in _RUN:
                    raise ValueError(f"unknown request kind {request.get('kind')!r}")
            except (OSError, ValueError, AttributeError):
                for fd in fds:
                    os.close(fd)
                continue  # the requester sees the connection close and starts cold
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    conn.close()
                    _take_over(request, fds, listener)
                    _RUN[request["kind"]](request["argv"])
                except BaseException:  # noqa: BLE001 (tell the grader why, then go)
                    traceback.print_exc()
                    code = 1
                finally:
                    os._exit(code)
            for fd in fds:
                os.close(fd)
            conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")


class WarmKernelTemplate:
    """A template process owned by this (grading) process, listening on ``socket_path``.

    ``threads`` caps torch's threads in every child (several notebooks share the cores)."""

    def __init__(self, threads: int | None = None) -> None:
        self._dir = tempfile.mkdtemp(prefix="posenc-warm-")
        self.socket_path = os.path.join(self._dir, "socket")
        env = dict(os.environ)
        env.pop(WARM_KERNELS_ENV, None)
        env.update(thread_env(threads))  # before torch is imported: OpenMP reads it once
        self.process = subprocess.Popen(
            [sys.executable, "-m", "posenc.grading.warm_kernels", self.socket_path],
            env=env,
            cwd=self._dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )

    def ready(self, timeout: float = 60.0) -> bool:
        """Wait until the template listens; False if it died or did not come up in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if os.path.exists(self.socket_path):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _remove_socket(self.socket_path)


def _remove_socket(socket_path: str) -> None:
    """Remove the socket and the private folder that holds it; fine if already gone."""
    for remove, path in ((os.unlink, socket_path), (os.rmdir, os.path.dirname(socket_path))):
        try:
            remove(path)
        except OSError:
            pass


class ForkedProcess:
    """Enough of ``subprocess.Popen`` (for jupyter_client and the grader) for a process that
    is not our child, such as one the template forked: it is watched through its pid.

    The template reaps its children, so one that exited is simply gone (or, for an instant, a
    zombie). Its exit code is not known here: ``returncode`` is -1 once it has ended."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
                stat = Path(f"/proc/{self.pid}/stat").read_text()
                if stat.rsplit(")", 1)[-1].split()[0] == "Z":
                    self.returncode = -1
            except (ProcessLookupError, FileNotFoundError):
                self.returncode = -1
            except PermissionError:
                pass
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def request_fork(
    socket_path: str,
    kind: str,
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    output_fds: tuple[int, int] | None = None,
) -> ForkedProcess:
    """Ask the template for a ``kind`` ("kernel") process; return a handle on it.

    Its stdout and stderr are ``output_fds`` (default: ours). Raises OSError when the template
    is gone."""
    fds = list(output_fds or (sys.stdout.fileno(), sys.stderr.fileno()))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(30)
        conn.connect(socket_path)
        request = {"kind": kind, "argv": argv, "env": env, "cwd": cwd, "requester": os.getpid()}
        message = json.dumps(request).encode()
        socket.send_fds(conn, [message], fds)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                raise OSError("the warm-kernel template closed the connection")
            reply += chunk
    return ForkedProcess(int(json.loads(reply)["pid"]))


# --- the provisioner -------------------------------------------------------------------------


class ForkedProvisioner(LocalProvisioner):
    """Launch the kernel by forking the warm template named in ``$POSENC_WARM_KERNELS``; with no
    template, launch it the ordinary way."""

    async def launch_kernel(self, cmd: list[str], **kwargs: Any):
        socket_path = os.environ.get(WARM_KERNELS_ENV)
        module_at = cmd.index("ipykernel_launcher") if "ipykernel_launcher" in cmd else -1
        if not socket_path or module_at < 0:
            return await super().launch_kernel(cmd, **kwargs)
        env = dict(kwargs.get("env") or os.environ)
        env.pop(WARM_KERNELS_ENV, None)
        cwd = os.path.abspath(kwargs.get("cwd") or os.getcwd())
        env["JPY_PARENT_PID"] = str(os.getpid())
        try:
            self.process = request_fork(
                socket_path, "kernel", cmd[module_at + 1 :], env=env, cwd=cwd
            )
        except (OSError, ValueError, KeyError):
            return await super().launch_kernel(cmd, **kwargs)
        self.pid = self.pgid = self.process.pid  # the child called setsid(): its own group
        self.cwd = cwd
        return self.connection_info


def forked_kernel_manager():
    """A kernel manager whose kernels come from the warm template when one is running."""
    from posenc.course.notebook_tools import kernel_manager

    km = kernel_manager()
    km.kernel_spec.metadata["kernel_provisioner"] = {"provisioner_name": PROVISIONER_NAME}
    return km


if __name__ == "__main__":
    serve(sys.argv[1])
