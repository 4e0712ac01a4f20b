"""Where code runs and how it is seeded: the two helpers every notebook calls first."""

from __future__ import annotations

import json
import os
import platform
import random
from pathlib import Path


def device():
    """Return ``torch.device("cuda")`` when a CUDA GPU is visible, else ``torch.device("cpu")``."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so that a run can be repeated exactly."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    import numpy as np
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cpu_name() -> str:
    """The CPU model, from /proc/cpuinfo where it exists (Linux), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_name(device=None) -> str:
    """What a measurement ran on, in one format for every results file: the GPU's name on
    CUDA, else the CPU model and the number of threads torch uses (results depend on both)."""
    import torch

    if device is not None and torch.device(device).type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()}, {torch.get_num_threads()} torch threads"


def write_json(path: str | Path, data) -> Path:
    """Write ``data`` as JSON through a temporary file, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def course_root(start: str | Path | None = None) -> Path:
    """The course folder: the nearest folder holding both ``solutions/`` and ``notebooks/``.

    Looks at ``start`` (default: the working directory) and the folders above it, then at the
    folders above this package (an editable checkout). Raises ``FileNotFoundError`` naming the
    places it looked when there is none (posenc installed as a plain package, run elsewhere).
    """
    origins = [Path(start) if start is not None else Path.cwd(), Path(__file__).resolve().parent]
    for origin in origins:
        for folder in [origin.resolve(), *origin.resolve().parents]:
            if (folder / "solutions").is_dir() and (folder / "notebooks").is_dir():
                return folder
    raise FileNotFoundError(
        f"no course folder (one holding solutions/ and notebooks/) at or above {origins[0]} "
        f"or {origins[1]}: run from the course folder, or name the folder explicitly"
    )
