"""An offline byte-level corpus: by default, the Python standard library's own source code.

Every Python install has it, so nothing is downloaded. Files are taken in sorted order; every
10th file goes to the held-out split (a split by file, so no function is half in training and
half in evaluation). The bytes are then cut to fixed budgets, and a SHA-256 of exactly the
bytes used is recorded with every result. ``corpus=PATH`` takes any folder (its ``*.py``,
``*.txt`` and ``*.md`` files) or a single text file instead.
"""

from __future__ import annotations

import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

TEXT_SUFFIXES = (".py", ".txt", ".md")
HELD_OUT_EVERY = 10  # file i (in sorted order) is held out when i % 10 == 0


@dataclass
class Corpus:
    train: Tensor  # (n_train,) uint8 bytes
    held_out: Tensor  # (n_held_out,) uint8 bytes
    source: str
    sha256: str  # of train bytes followed by held-out bytes

    @property
    def vocab_size(self) -> int:
        return 256


def stdlib_path() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(root: Path, suffixes: tuple[str, ...] = TEXT_SUFFIXES) -> list[Path]:
    """Text files under ``root`` in sorted order (site-packages excluded)."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ValueError(f"corpus must be a folder or a text file, got {root}")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.suffix in suffixes and p.is_file() and "site-packages" not in p.parts
    )
    if not files:
        raise ValueError(f"corpus folder {root} holds no {'/'.join(suffixes)} files")
    return files


def load_corpus(
    corpus: str | Path | None = None, *, train_bytes: int = 4_000_000, held_out_bytes: int = 400_000
) -> Corpus:
    """Read the corpus, split it by file, and cut each split to its byte budget."""
    if train_bytes <= 0 or held_out_bytes <= 0:
        raise ValueError("train_bytes and held_out_bytes must be positive")
    root = stdlib_path() if corpus is None else Path(corpus)
    files = corpus_files(root, (".py",) if corpus is None else TEXT_SUFFIXES)
    if len(files) == 1:  # a single file: the last tenth is held out
        data = files[0].read_bytes()
        cut = len(data) - len(data) // HELD_OUT_EVERY
        train, held = data[:cut], data[cut:]
    else:
        parts: dict[bool, list[bytes]] = {True: [], False: []}
        sizes = {True: 0, False: 0}
        budget = {True: held_out_bytes, False: train_bytes}
        for i, path in enumerate(files):
            held_out = i % HELD_OUT_EVERY == 0
            if sizes[held_out] < budget[held_out]:
                text = path.read_bytes()
                parts[held_out].append(text)
                sizes[held_out] += len(text)
            if all(sizes[k] >= budget[k] for k in (True, False)):
                break
        train, held = b"".join(parts[False]), b"".join(parts[True])
    train, held = train[:train_bytes], held[:held_out_bytes]
    if len(held) < 1024 or len(train) < 1024:
        raise ValueError(
            f"corpus {root} is too small: {len(train)} training and {len(held)} "
            "held-out bytes (need at least 1 KiB each)"
        )
    digest = hashlib.sha256(train + held).hexdigest()
    to_tensor = lambda b: torch.frombuffer(bytearray(b), dtype=torch.uint8)  # noqa: E731
    return Corpus(to_tensor(train), to_tensor(held), str(root), digest)


def training_batches(data: Tensor, batch: int, seq_len: int, steps: int, seed: int):
    """``steps`` batches of random windows: (inputs, targets), each (batch, seq_len) long.

    The data order depends only on ``seed``, so every scheme sees the same bytes.
    """
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=g)
        window = torch.stack([data[s : s + seq_len + 1] for s in starts.tolist()]).long()
        yield window[:, :-1], window[:, 1:]


def evaluation_windows(data: Tensor, seq_len: int, total_tokens: int) -> tuple[Tensor, Tensor]:
    """The first ``total_tokens`` held-out bytes cut into consecutive windows of ``seq_len``.

    Every evaluation length sees exactly the same bytes, only cut differently.
    """
    if total_tokens % seq_len:
        raise ValueError(f"total_tokens ({total_tokens}) must be a multiple of seq_len ({seq_len})")
    if total_tokens + 1 > len(data):
        raise ValueError(f"need {total_tokens + 1} held-out bytes, have {len(data)}")
    inputs = data[:total_tokens].long().view(-1, seq_len)
    targets = data[1 : total_tokens + 1].long().view(-1, seq_len)
    return inputs, targets
