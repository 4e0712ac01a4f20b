"""The jail a student's notebook runs in during class grading (bubblewrap), and the view of
posenc it sees.

Each grading thread starts one *template* (:mod:`posenc.grading.worker`) inside ``bwrap``:

- read-only: ``/usr``, the Python installation and its virtual environment, and a *view* of
  posenc: the library without ``grading/`` (a stand-in ``check`` instead), in which every
  reference answer to the notebook's own exercises (``Exercise.off_limits``) is replaced by a
  stand-in that raises ``ReferenceHidden``; the course's ``results/`` (read-only, the
  notebooks read ``../results``);
- private and empty: ``/tmp``, the working folder ``/work/nb`` (both in-memory, 256 MiB at
  most, wiped between notebooks), ``/dev``, ``/proc``;
- no network, its own PID, IPC and user namespaces, no capabilities, a new session (no
  terminal), and it dies with the grader (``--die-with-parent``);
- limits per notebook (setrlimit in the forked child): address space, CPU seconds, file size,
  open files, processes.

Nothing else of the machine is visible: not ``solutions/``, not the graders, not the other
submissions, not the report.
"""

from __future__ import annotations

import ast
import contextlib
import os
import shutil
import site
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posenc.grading import wire
from posenc.grading.text import shorten
from posenc.grading.threads import parse_python

VIEW, WORK, RESULTS = "/posenc-view", "/work", "/work/results"
JAIL_UID = 1000
SCRATCH_BYTES = 256 << 20  # each writable folder in the jail (in memory: tmpfs)
GRADING_STUB = '''"""A stand-in for the graders inside a class-grading jail: your answers
are checked by the class grader, from outside this process."""


def check(name, fn, *, raises=True):
    print(f"({name}: checked by the class grader)")
'''
HIDDEN_MODULE = '''"""Reference answers the class grader hides from this notebook."""

USED = []


class ReferenceHidden(Exception):
    """Raised by a reference answer to one of this notebook's exercises."""


def hidden(name):
    USED.append(name)
    raise ReferenceHidden(f"{name} is hidden while this notebook is graded: write it yourself")
'''


class JailError(RuntimeError):
    """The jail could not be set up (bwrap missing or not working)."""


@dataclass(frozen=True)
class Limits:
    """What one notebook's process may use."""

    memory_mb: int = 6144
    cpu_seconds: int = 600
    file_mb: int = 64
    open_files: int = 256
    processes: int = 512  # beyond the user's own: the limit counts all of the user's threads

    def as_rlimits(self) -> dict[str, int]:
        return {
            "memory_bytes": self.memory_mb << 20,
            "cpu_seconds": self.cpu_seconds,
            "file_bytes": self.file_mb << 20,
            "open_files": self.open_files,
            "processes": user_threads() + self.processes,
        }


def user_threads() -> int:
    """How many threads this user runs now (RLIMIT_NPROC counts them all, not just the jail's;
    root is exempt from it)."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
    return count


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


# --- the view of posenc ----------------------------------------------------------------------


def build_view(dest: Path, off_limits: tuple[str, ...]) -> Path:
    """Write posenc into ``dest`` as the jail sees it; return ``dest``."""
    import posenc

    source = Path(posenc.__file__).parent
    target = dest / "posenc"
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns("__pycache__", "grading", "*.pyc")
    )
    (target / "grading").mkdir()
    (target / "grading" / "__init__.py").write_text(GRADING_STUB)
    for module in ("text", "wire", "worker"):  # the worker's own code: no graders, no answers
        shutil.copy(source / "grading" / f"{module}.py", target / "grading" / f"{module}.py")
    (target / "_hidden.py").write_text(HIDDEN_MODULE)
    for dotted in off_limits:
        _hide(target.parent, dotted)
    return dest


def _hide(root: Path, dotted: str) -> None:
    """Replace the function or class ``dotted`` (posenc.module.name) in the view by a stand-in
    that raises ReferenceHidden."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        base = root.joinpath(*parts[:split])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                tree = parse_python(path.read_text(encoding="utf-8"))
                if _replace(tree.body, parts[split:], dotted):
                    path.write_text(ast.unparse(tree) + "\n", encoding="utf-8")
                    return


def _replace(body: list[ast.stmt], names: list[str], dotted: str) -> bool:
    stand_in = parse_python(
        f"def {names[-1]}(*args, **kwargs):\n"
        f"    return __import__('posenc._hidden', fromlist=['hidden']).hidden({dotted!r})\n"
    ).body[0]
    for i, node in enumerate(body):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if node.name != names[0]:
            continue
        if len(names) == 1:
            body[i] = stand_in
            return True
        return isinstance(node, ast.ClassDef) and _replace(node.body, names[1:], dotted)
    return False


# --- the bwrap command -----------------------------------------------------------------------


def python_roots() -> list[str]:
    """The folders the jailed Python needs: its installation and its environment."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    roots.update(p for p in site.getsitepackages() if os.path.isdir(p))
    kept = sorted(r for r in roots if not r.startswith("/usr/") and r != "/usr" and r != "/")
    return [r for r in kept if not any(r.startswith(o + "/") for o in kept if o != r)]


def installed_posenc() -> list[str]:
    """Copies of posenc installed in the Python environment (site-packages/posenc)."""
    return sorted(
        str(p)
        for root in python_roots()
        for p in Path(root).glob("lib*/python3*/site-packages/posenc")
        if p.is_dir()
    )


def bwrap_argv(view: Path, results: Path | None, env: dict[str, str]) -> list[str]:
    """``bwrap`` and its options for one template (the command follows)."""
    binary = bwrap_path()
    if binary is None:
        raise JailError("bwrap (bubblewrap) is not installed: apt-get install bubblewrap")
    argv = [binary, "--unshare-all", "--unshare-user", "--uid", str(JAIL_UID)]
    argv += ["--gid", str(JAIL_UID), "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    for folder in ("/tmp", WORK):  # first: the binds below go over them
        argv += ["--size", str(SCRATCH_BYTES), "--tmpfs", folder]
    argv += ["--dir", f"{WORK}/nb"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = Path("/", name)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    for etc in ("/etc/ld.so.cache", "/etc/fonts", "/etc/localtime"):
        argv += ["--ro-bind-try", etc, etc]
    for root in python_roots():
        argv += ["--ro-bind", root, root]
    for installed in installed_posenc():  # a non-editable install holds the graders: mask it
        argv += ["--tmpfs", installed]
    argv += ["--proc", "/proc", "--dev", "/dev", "--ro-bind", str(view), VIEW]
    if results is not None and results.is_dir():
        argv += ["--ro-bind", str(results.resolve()), RESULTS]
    argv += ["--clearenv", "--chdir", f"{WORK}/nb"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv


def jail_env(threads: int | None) -> dict[str, str]:
    """The environment inside the jail (nothing of the grader's)."""
    from posenc.grading.threads import thread_env

    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": "/tmp",
        "PYTHONPATH": VIEW,
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "LANG": "C.UTF-8",
    }
    env.update(thread_env(threads))
    return env


def bwrap_works() -> tuple[bool, str]:
    """Whether bwrap can start a jailed Python here; and what went wrong if not."""
    if bwrap_path() is None:
        return False, "bwrap is not installed"
    with tempfile.TemporaryDirectory() as view:
        argv = bwrap_argv(Path(view), None, jail_env(1)) + [sys.executable, "-c", "print(6 * 7)"]
        try:
            run = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, f"{type(err).__name__}: {err}"
    if run.stdout.strip() != "42":
        return False, shorten((run.stderr.strip().splitlines() or ["no output"])[-1], 200)
    return True, ""


# --- a template, from the grader's side ------------------------------------------------------


class Template:
    """A worker template (jailed unless ``jailed=False``) for the notebooks of one view."""

    def __init__(
        self, view: Path, results: Path | None, threads: int | None, jailed: bool = True
    ) -> None:
        self.jailed = jailed
        self.scratch = None if jailed else Path(tempfile.mkdtemp(prefix="posenc-unjailed-"))
        self.control, theirs = socket.socketpair()
        command = [sys.executable, "-m", "posenc.grading.worker", str(theirs.fileno())]
        env = jail_env(threads)
        if jailed:
            argv, cwd, popen_env = bwrap_argv(view, results, env) + command + ["--jailed"], None, {}
        else:
            env["PYTHONPATH"], env["HOME"] = str(view), str(self.scratch)
            argv, cwd, popen_env = command, str(self.scratch), env
        try:
            self.process = subprocess.Popen(
                argv,
                pass_fds=[theirs.fileno()],
                env=popen_env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            theirs.close()
        try:
            ready = wire.receive(self.control, 120)
        except (OSError, EOFError, TimeoutError, wire.WireError) as err:
            self.stop()
            raise JailError(f"the worker template did not start ({type(err).__name__})") from None
        if ready != {"ready": True}:
            self.stop()
            raise JailError("the worker template answered something unexpected")

    def alive(self) -> bool:
        return self.process.poll() is None

    def start(self, limits: Limits, threads: int | None) -> socket.socket:
        """Fork a child for one notebook; the socket to talk to it."""
        ours, theirs = socket.socketpair()
        cwd = f"{WORK}/nb" if self.jailed else str(self.scratch / "nb")
        request: dict[str, Any] = {"op": "run", "limits": limits.as_rlimits(), "cwd": cwd}
        request["threads"] = threads or 0
        try:
            socket.send_fds(self.control, [b"F"], [theirs.fileno()])
            wire.send(self.control, request)
            wire.receive(self.control, 30)
        finally:
            theirs.close()
        return ours

    def reset(self) -> bool:
        """Kill the last notebook's processes and wipe its folders; False if the template is
        not answering (then it has been stopped)."""
        try:
            socket.send_fds(self.control, [b"R"], [])
            wire.send(self.control, {"op": "reset"})
            if wire.receive(self.control, 30) == {"ok": True}:
                if self.scratch is not None:
                    shutil.rmtree(self.scratch / "nb", ignore_errors=True)
                return True
        except (OSError, EOFError, TimeoutError, wire.WireError):
            pass
        self.stop()
        return False

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self.control.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
