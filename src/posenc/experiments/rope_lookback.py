"""RoPE on the look-back task past its training length: accuracy per window, over seeds.

Notebook 04 trains one model live; this module trains several seeds of the same toy
configuration (``posenc.experiments.toy_tasks``, RoPE base ``TOY_ROPE_BASE``), reports the
accuracy per window of 32 positions up to 5× the training length, and tests one cause of the
errors past it: *aliases*, unseen offsets where layer 0's rotated scores line up with those of
the look-back offset again. ``python -m posenc.experiments.rope_lookback`` writes
``results/rope_lookback.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import Tensor

from posenc.experiments.toy_tasks import (
    TOY_ROPE_BASE,
    TOY_SEQ_LEN,
    LookbackModel,
    last_query_accuracy,
    lookback_accuracy,
    train_lookback,
)
from posenc.rope import RotaryEmbedding, rope_scores_by_distance
from posenc.runtime import machine_name

WINDOW = 32
TEST_LEN = 5 * TOY_SEQ_LEN
ALIAS_MARGIN = 0.25  # an alias scores within this much of the look-back offset's score
DEFAULT_OUT = Path(__file__).resolve().parents[3] / "results" / "rope_lookback.json"


def window_accuracy(accuracy: Tensor, width: int = WINDOW) -> Tensor:
    """Mean of a per-position accuracy (NaN where there is no target) over windows of
    ``width`` positions: window w covers positions w·width … (w + 1)·width − 1.  (n_windows,)"""
    if accuracy.ndim != 1 or width < 1 or len(accuracy) % width:
        raise ValueError(
            f"accuracy must be 1-D with a length divisible by width={width}, "
            f"got shape {tuple(accuracy.shape)}"
        )
    return accuracy.view(-1, width).nanmean(-1)


@torch.no_grad()
def score_profile(
    model: LookbackModel, distances: Tensor, layer: int = 0, *, absolute: bool = False
) -> Tensor:
    """The scores q·k/√d of one layer's heads as a function of the distance m − n, averaged over
    every (query token, key token) pair of the vocabulary (their absolute values with
    ``absolute``).  Layer 0 sees the token embeddings alone, so this is exactly its
    content-averaged score.  Returns (heads, R)."""
    attention = model.layers[layer]
    heads, vocab = attention.num_heads, model.tok.num_embeddings
    q, k, _ = attention.qkv(model.tok.weight).view(vocab, 3, heads, -1).permute(1, 2, 0, 3)
    scores = rope_scores_by_distance(
        q[:, :, None, :], k[:, None, :, :], distances, base=model.scheme.base
    )  # (heads, vocab, vocab, R)
    scores = scores.abs() if absolute else scores
    return scores.mean((1, 2)) / math.sqrt(q.shape[-1])


def alias_offsets(
    model: LookbackModel, test_len: int, *, lookback: int = 2, margin: float = ALIAS_MARGIN
) -> list[int]:
    """Offsets never seen in training (≥ TOY_SEQ_LEN, < test_len) where some head of layer 0
    scores within ``margin`` of its score at the look-back offset."""
    profile = score_profile(model, torch.arange(test_len))  # (heads, test_len)
    gap = (profile - profile[:, lookback : lookback + 1]).max(0).values  # (test_len,)
    return [r for r in range(TOY_SEQ_LEN, test_len) if gap[r] > -margin]


def study_seed(seed: int, test_len: int = TEST_LEN) -> dict:
    """Train one seed; its accuracy per window and the last query's accuracy with keys hidden."""
    model, _ = train_lookback(RotaryEmbedding(8, TOY_ROPE_BASE), seed=seed, progress=False)
    aliases = alias_offsets(model, test_len)
    unseen = range(TOY_SEQ_LEN, test_len)
    hide = {
        "nothing": None,
        "aliases": aliases,
        "unseen_but_aliases": [r for r in unseen if r not in aliases],
        "all_unseen": unseen,
    }
    return {
        "seed": seed,
        "windows": window_accuracy(lookback_accuracy(model, test_len)).tolist(),
        "aliases": aliases,
        "last_query": {
            k: last_query_accuracy(model, test_len, hidden_offsets=h) for k, h in hide.items()
        },
    }


def run(seeds=(0, 1, 2, 3, 4), test_len: int = TEST_LEN) -> dict:
    """Every seed's :func:`study_seed`, with the configuration and the machine."""
    start = time.time()
    per_seed = [study_seed(s, test_len) for s in seeds]
    return {
        "config": {
            "seq_len": TOY_SEQ_LEN,
            "rope_base": TOY_ROPE_BASE,
            "head_dim": 8,
            "window": WINDOW,
            "test_len": test_len,
            "alias_margin": ALIAS_MARGIN,
        },
        "seeds": per_seed,
        "machine": machine_name(),
        "torch": torch.__version__,
        "wall_s": round(time.time() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 … n − 1 (default 5)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)  # results are deterministic per seed and thread count
    result = run(tuple(range(args.seeds)))
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({result['wall_s']} s)")


if __name__ == "__main__":
    main()
