"""RoPE scaling on the tiny LM: every method without fine-tuning, then a short fine-tune.

    python -m posenc.experiments.scaling_study            # full (about 2 minutes on 2 CPU cores)
    python -m posenc.experiments.scaling_study --quick    # seconds
    make scaling

1. Train the RoPE model of the extrapolation study (same settings, seed 0) at length L.
2. Evaluate it at 2L, 4L, 8L with plain RoPE and with each scaling method at factor E / L:
   PI (linear), NTK-aware, dynamic NTK, YaRN and Llama 3's bands. No retraining.
3. Fine-tune copies of the model at 2L with PI and with YaRN (factor 2) for a few hundred
   steps, evaluating at 2L along the way: how many steps does each need to recover?
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from posenc.experiments.data import load_corpus, training_batches
from posenc.experiments.extrapolation import (
    Settings,
    perplexity_from_losses,
    position_losses,
    provenance,
    train,
)
from posenc.experiments.model import ModelConfig, with_rope_scaling
from posenc.rope_scaling import RopeScaling
from posenc.runtime import write_json

METHODS = ("rope", "linear", "ntk", "dynamic", "yarn", "llama3")


def scaling_config(method: str, factor: float, original_len: int) -> RopeScaling | None:
    """The Hugging Face-style ``rope_scaling`` dict of a method at ``factor``."""
    if method == "rope":
        return None
    base: RopeScaling = {"rope_type": method, "factor": max(1.0, factor)}
    if method in ("dynamic", "yarn", "llama3"):
        base["original_max_position_embeddings"] = original_len
    if method == "llama3":
        base.update(low_freq_factor=1.0, high_freq_factor=4.0)
    return base


def ppl_without_finetuning(model, corpus, s: Settings) -> dict[str, dict[str, float]]:
    """Perplexity of every method at every evaluation length E, at factor E / L."""
    ppl: dict[str, dict[str, float]] = {}
    for method in METHODS:
        ppl[method] = {}
        for E in s.eval_lens:
            scaling = scaling_config(method, E / s.train_len, s.train_len)
            losses = position_losses(model, corpus, E, s.eval_tokens, scaling=scaling)
            ppl[method][str(E)] = perplexity_from_losses(losses)
    return ppl


def finetune_curve(model, method: str, corpus, s: Settings, steps: int, eval_every: int, bar):
    """Fine-tune a copy of ``model`` at 2L with ``method`` (factor 2): {step: ppl at 2L}."""
    L = s.train_len
    tuned = with_rope_scaling(model, scaling_config(method, 2.0, L)).train()
    opt = torch.optim.AdamW(tuned.parameters(), lr=s.lr / 4, weight_decay=0.01)
    curve = {}
    batches = training_batches(corpus.train, s.batch, 2 * L, steps, seed=1)
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            tuned.eval()
            curve[str(step)] = perplexity_from_losses(
                position_losses(tuned, corpus, 2 * L, s.eval_tokens)
            )
            tuned.train()
        if step == steps:
            break
        ids, targets = next(batches)
        loss = tuned.token_losses(ids, targets).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.update(1)
    return curve


def run_scaling_study(
    s: Settings,
    *,
    finetune_steps: int = 200,
    eval_every: int = 25,
    corpus_path: str | None = None,
    show_progress: bool = True,
) -> dict:
    """Train the RoPE model, score every method with no fine-tuning, then fine-tune PI and YaRN."""
    from tqdm.auto import tqdm

    start = time.time()
    corpus = load_corpus(corpus_path, train_bytes=s.train_bytes, held_out_bytes=s.held_out_bytes)
    cfg = ModelConfig(
        scheme="rope",
        d_model=s.d_model,
        n_layers=s.n_layers,
        n_heads=s.n_heads,
        max_len=s.train_len,
    )
    total = s.steps + 2 * finetune_steps
    with tqdm(total=total, desc="rope scaling", unit="step", disable=not show_progress) as bar:
        model = train(cfg, corpus, s, seed=0, progress=bar)
        ppl = ppl_without_finetuning(model, corpus, s)
        finetune = {
            method: finetune_curve(model, method, corpus, s, finetune_steps, eval_every, bar)
            for method in ("linear", "yarn")
        }
    return {
        "train_len": s.train_len,
        "eval_lens": s.eval_lens,
        "ppl": ppl,
        "finetune_at_2L": finetune,
        "finetune_steps": finetune_steps,
        "settings": {**s.__dict__, "finetune_lr": s.lr / 4},
        "corpus": {"source": corpus.source, "sha256": corpus.sha256},
        **provenance(start),
    }


def format_table(results: dict) -> str:
    lens = [str(E) for E in results["eval_lens"]]
    lines = ["method".ljust(10) + "".join(f"ppl@{E}".rjust(11) for E in lens)]
    for method, row in results["ppl"].items():
        lines.append(method.ljust(10) + "".join(f"{row[E]:11.3f}" for E in lens))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posenc.experiments.scaling_study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, seconds")
    parser.add_argument("--finetune-steps", type=int, help="fine-tuning steps at 2L")
    parser.add_argument("--corpus", help="a folder or text file instead of the stdlib sources")
    parser.add_argument("--out", default="results")
    args = parser.parse_args(argv)
    from posenc.experiments.extrapolation import QUICK

    s = Settings(**QUICK) if args.quick else Settings()
    steps = args.finetune_steps if args.finetune_steps is not None else (20 if args.quick else 200)
    if steps < 1:
        parser.error(f"--finetune-steps must be >= 1, got {steps}")
    results = run_scaling_study(
        s, finetune_steps=steps, eval_every=max(1, steps // 8), corpus_path=args.corpus
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"rope_scaling_{'quick' if args.quick else 'full'}.json"
    write_json(path, results)
    print(format_table(results))
    for method, curve in results["finetune_at_2L"].items():
        print(f"fine-tune {method} at 2L: " + ", ".join(f"{k}: {v:.2f}" for k, v in curve.items()))
    print(f"wrote {path} ({results['wall_time_s']} s on {results['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
