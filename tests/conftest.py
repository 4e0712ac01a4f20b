"""Shared test set-up: no network for the code under test, and paths to the course folders."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOKS = ROOT / "notebooks"

_real_connect = socket.socket.connect


def _loopback_only(self, address, *args, **kwargs):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            allowed = ipaddress.ip_address(host).is_loopback
        except ValueError:
            allowed = host == "localhost"
        if not allowed:
            raise RuntimeError(f"tests must not use the network (tried to connect to {host})")
    return _real_connect(self, address, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse any connection that leaves this machine; loopback (Jupyter kernels) is fine."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture
def text_folder(tmp_path):
    """A small corpus of 12 Python files (enough for a held-out split by file)."""
    for i in range(12):
        (tmp_path / f"f{i:02d}.py").write_text(f"def f{i}(x):\n    return x * {i} + 1\n" * 150)
    return tmp_path


def tiny_settings(**overrides):
    """Settings for a study small enough for a test (a few seconds on 2 cores)."""
    from posenc.experiments.extrapolation import Settings

    base = dict(
        train_len=8,
        steps=5,
        batch=4,
        d_model=32,
        n_heads=4,
        eval_tokens=128,
        train_bytes=20_000,
        held_out_bytes=3_000,
    )
    return Settings(**(base | overrides))
