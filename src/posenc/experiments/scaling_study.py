"""RoPE scaling on the tiny LM: every method without fine-tuning, then a short fine-tune.

    python -m posenc.experiments.scaling_study            # full (3 seeds; see the results file)
    python -m posenc.experiments.scaling_study --quick    # seconds
    make scaling

For each seed (0, 1, 2):

1. Train the RoPE model of the extrapolation study (same settings, RoPE base 10) at length L.
2. Evaluate it at 2L, 4L, 8L with plain RoPE and with each scaling method at factor E / L:
   PI (linear), NTK-aware, YaRN and Llama 3's bands. Dynamic NTK runs as Hugging Face runs
   it: a config ships one fixed factor (``DYNAMIC_FACTOR``) and the base is recomputed from
   the current length s, base · (f·s/L − (f − 1))^(d/(d−2)). No retraining.
3. Fine-tune three copies at 2L for the same steps and learning rate: plain RoPE (the
   control: how much is just training at 2L?), PI and YaRN (factor 2), scoring 2L as they go.

Every figure is stored per seed and as mean, sd, min and max over the seeds; a method beats
another only where their ranges (min–max) do not overlap, otherwise the verdict is "tie".
"""

from __future__ import annotations

import argparse
import json
import statistics
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
from posenc.experiments.styles import style
from posenc.rope import LLAMA2_REGIME, slow_pair_count
from posenc.rope_scaling import RopeScaling, pair_treatment
from posenc.runtime import write_json

METHODS = ("rope", "linear", "ntk", "dynamic", "yarn", "llama3")
FINETUNE_METHODS = ("rope", "linear", "yarn")  # plain RoPE at 2L is the control
SEEDS = (0, 1, 2)
# Dynamic NTK's config factor, fixed whatever the length (Hugging Face's documented example,
# {"rope_type": "dynamic", "factor": 2.0}); the length does the rest.
DYNAMIC_FACTOR = 2.0


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


def study_factor(method: str, eval_len: int, train_len: int) -> float:
    """The config factor each method runs with at evaluation length E: E / L, except dynamic
    NTK, whose config ships the fixed DYNAMIC_FACTOR (its base follows the length itself)."""
    return DYNAMIC_FACTOR if method == "dynamic" else eval_len / train_len


def dynamic_stretch(factor: float, seq_len: int, train_len: int) -> float:
    """How much dynamic NTK slows its slowest pair at length s: f·s/L − (f − 1) (≥ 1)."""
    return max(1.0, factor * seq_len / train_len - (factor - 1))


def regime(cfg: ModelConfig, train_len: int) -> dict:
    """Slow pairs (wavelength > L) of the tiny LM's heads and of Llama 2 at 4096."""
    head_dim = cfg.d_model // cfg.n_heads
    llama2 = LLAMA2_REGIME
    return {
        "head_dim": head_dim,
        "base": cfg.rope_base,
        "train_len": train_len,
        "pairs": head_dim // 2,
        "slow_pairs": slow_pair_count(train_len, head_dim, cfg.rope_base),
        "llama2": {
            **llama2,
            "pairs": llama2["head_dim"] // 2,
            "slow_pairs": slow_pair_count(llama2["train_len"], llama2["head_dim"], llama2["base"]),
        },
    }


def pair_counts(cfg: ModelConfig, s: Settings) -> dict[str, dict[str, dict[str, int]]]:
    """{str(E): {method: kept / blended / interpolated pairs}} at each stretch E / L > 1."""
    head_dim, L = cfg.d_model // cfg.n_heads, s.train_len
    return {
        str(E): {
            m: pair_treatment(
                head_dim,
                scaling_config(m, study_factor(m, E, L), L),
                E / L,
                cfg.rope_base,
                seq_len=E,
                max_position_embeddings=L,
            )
            for m in METHODS
        }
        for E in s.eval_lens
        if E > L
    }


def ppl_without_finetuning(model, corpus, s: Settings) -> dict[str, dict[str, float]]:
    """Perplexity of every method at every evaluation length E (factor: :func:`study_factor`)."""
    ppl: dict[str, dict[str, float]] = {}
    for method in METHODS:
        ppl[method] = {}
        for E in s.eval_lens:
            scaling = scaling_config(method, study_factor(method, E, s.train_len), s.train_len)
            losses = position_losses(model, corpus, E, s.eval_tokens, scaling=scaling)
            ppl[method][str(E)] = perplexity_from_losses(losses)
    return ppl


def finetune_curve(model, method: str, corpus, s: Settings, steps: int, eval_every: int, bar):
    """Fine-tune a copy of ``model`` at 2L with ``method`` (factor 2): {step: ppl at 2L}.
    Every method sees the same batches, steps and learning rate (s.lr / 4)."""
    L = s.train_len
    scaling = scaling_config(method, 2.0, L) or {"rope_type": "default"}  # rope: plain, a copy
    tuned = with_rope_scaling(model, scaling).train()
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


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one seed), min and max over seeds."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": statistics.fmean(values), "sd": sd, "min": min(values), "max": max(values)}


def verdict(a: str, a_spread: dict, b: str, b_spread: dict) -> str:
    """The name whose whole range (min–max over seeds) lies below the other's, else "tie"."""
    if a_spread["max"] < b_spread["min"]:
        return a
    if b_spread["max"] < a_spread["min"]:
        return b
    return "tie"


def summarise(per_seed: list[dict]) -> dict:
    """Mean/sd/min/max per method per length (and per fine-tuning step) over the seeds."""
    first = per_seed[0]
    return {
        key: {
            method: {k: spread([r[key][method][k] for r in per_seed]) for k in row}
            for method, row in first[key].items()
        }
        for key in ("ppl", "finetune_at_2L")
    }


def all_verdicts(table: dict[str, dict[str, dict]]) -> dict[str, dict[str, str]]:
    """{column: {"a vs b": winner or "tie"}} for every pair of rows of a summarised table."""
    rows = list(table)
    columns = list(table[rows[0]])
    return {
        c: {
            f"{a} vs {b}": verdict(a, table[a][c], b, table[b][c])
            for i, a in enumerate(rows)
            for b in rows[i + 1 :]
        }
        for c in columns
    }


def one_seed(seed: int, cfg: ModelConfig, corpus, s: Settings, ft: tuple[int, int], bar) -> dict:
    """Train at L with ``seed``, score every method, fine-tune each of FINETUNE_METHODS."""
    steps, eval_every = ft
    model = train(cfg, corpus, s, seed=seed, progress=bar)
    return {
        "seed": seed,
        "ppl": ppl_without_finetuning(model, corpus, s),
        "finetune_at_2L": {
            m: finetune_curve(model, m, corpus, s, steps, eval_every, bar) for m in FINETUNE_METHODS
        },
    }


def run_scaling_study(
    s: Settings,
    *,
    seeds: tuple[int, ...] | list[int] = SEEDS,
    finetune_steps: int = 200,
    eval_every: int = 25,
    corpus_path: str | None = None,
    show_progress: bool = True,
) -> dict:
    """Per seed: train the RoPE model, score every method, fine-tune plain RoPE, PI and YaRN."""
    from tqdm.auto import tqdm

    if not seeds:
        raise ValueError("seeds must name at least one seed")
    start = time.time()
    corpus = load_corpus(corpus_path, train_bytes=s.train_bytes, held_out_bytes=s.held_out_bytes)
    cfg = ModelConfig(
        scheme="rope",
        d_model=s.d_model,
        n_layers=s.n_layers,
        n_heads=s.n_heads,
        max_len=s.train_len,
    )
    total = len(seeds) * (s.steps + len(FINETUNE_METHODS) * finetune_steps)
    ft = (finetune_steps, eval_every)
    with tqdm(total=total, desc="rope scaling", unit="step", disable=not show_progress) as bar:
        per_seed = [one_seed(seed, cfg, corpus, s, ft, bar) for seed in seeds]
    return {
        "train_len": s.train_len,
        "eval_lens": s.eval_lens,
        "seeds": list(seeds),
        "regime": regime(cfg, s.train_len),
        "dynamic": {
            "factor": DYNAMIC_FACTOR,
            "stretch": {
                str(E): dynamic_stretch(DYNAMIC_FACTOR, E, s.train_len) for E in s.eval_lens
            },
        },
        "pairs": pair_counts(cfg, s),
        **with_summary(per_seed, finetune_steps),
        "settings": {**s.__dict__, "seeds": list(seeds), "finetune_lr": s.lr / 4},
        "corpus": {"source": corpus.source, "sha256": corpus.sha256},
        **provenance(start),
    }


def with_summary(per_seed: list[dict], finetune_steps: int) -> dict:
    """The per-seed runs with their mean/sd/min/max and the verdicts they allow."""
    summary = summarise(per_seed)
    last = str(finetune_steps)
    return {
        **summary,
        "verdicts": all_verdicts(summary["ppl"]),
        "finetune_verdicts": all_verdicts(
            {m: {last: c[last]} for m, c in summary["finetune_at_2L"].items()}
        ),
        "finetune_steps": finetune_steps,
        "per_seed": per_seed,
    }


def merge_results(parts: list[dict]) -> dict:
    """One results dict from runs of the same study on different seeds (run side by side as
    separate processes): the seeds pooled, the spreads recomputed; wall_time_s is the
    longest run's, each run's is kept in part_wall_times_s."""
    first = parts[0]
    for part in parts[1:]:
        for key in ("train_len", "eval_lens", "finetune_steps", "corpus", "pairs"):
            if part[key] != first[key]:
                raise ValueError(f"parts differ in {key!r}: not runs of the same study")
    per_seed = sorted((r for p in parts for r in p["per_seed"]), key=lambda r: r["seed"])
    seeds = [r["seed"] for r in per_seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"parts repeat a seed: {seeds}")
    return {
        **first,
        "seeds": seeds,
        **with_summary(per_seed, first["finetune_steps"]),
        "settings": {**first["settings"], "seeds": seeds},
        "wall_time_s": max(p["wall_time_s"] for p in parts),
        "part_wall_times_s": [p["wall_time_s"] for p in parts],
    }


def _mean_sd(cell: dict) -> str:
    return f"{cell['mean']:.2f} ± {cell['sd']:.2f}"


def format_table(results: dict) -> str:
    """Perplexity mean ± sd over seeds, one row per method, one column per length."""
    lens = [str(E) for E in results["eval_lens"]]
    lines = [f"perplexity, mean ± sd over seeds {results['seeds']}"]
    lines.append("method".ljust(9) + "".join(f"ppl@{E}".rjust(15) for E in lens))
    for method, row in results["ppl"].items():
        lines.append(method.ljust(9) + "".join(_mean_sd(row[E]).rjust(15) for E in lens))
    return "\n".join(lines)


def best_with_ties(table: dict[str, dict], column: str) -> tuple[str, list[str]]:
    """The row with the lowest mean in ``column`` and the rows whose range overlaps it."""
    best = min(table, key=lambda m: table[m][column]["mean"])
    ties = [
        m
        for m in table
        if m != best and verdict(best, table[best][column], m, table[m][column]) == "tie"
    ]
    return best, ties


def format_pairs(results: dict) -> str:
    """Per stretch E/L: how many pairs each method keeps / blends / interpolates fully."""
    r = results["regime"]
    lines = [
        f"tiny LM: head_dim {r['head_dim']}, base {r['base']:g}, L {r['train_len']}: "
        f"{r['slow_pairs']} of {r['pairs']} pairs slower than L; Llama 2 "
        f"(base {r['llama2']['base']:g}, L {r['llama2']['train_len']}): "
        f"{r['llama2']['slow_pairs']} of {r['llama2']['pairs']}",
        "pairs kept / blended / interpolated (by at least E/L)",
        "method".ljust(9)
        + "".join(f"E/L={int(E) // results['train_len']}".rjust(11) for E in results["pairs"]),
    ]
    for method in METHODS:
        cells = [results["pairs"][E][method] for E in results["pairs"]]
        lines.append(
            method.ljust(9)
            + "".join(f"{c['kept']}/{c['blended']}/{c['interpolated']}".rjust(11) for c in cells)
        )
    return "\n".join(lines)


def _band(ax, xs: list[int], cells: list[dict], name: str, label: str) -> None:
    """Mean line in ``name``'s style, shaded min–max range over the seeds."""
    look = {**style(name), "label": label}
    ax.plot(xs, [c["mean"] for c in cells], **look)
    lo, hi = [c["min"] for c in cells], [c["max"] for c in cells]
    ax.fill_between(xs, lo, hi, color=look["color"], alpha=0.15, linewidth=0)


def plot_results(results: dict, path: str | Path | None = None):
    """Left: perplexity vs evaluation length per method, no fine-tuning (log y: PI and plain
    RoPE grow far above the rest). Right: perplexity at 2L along the fine-tune. Lines are
    means over seeds, bands their min–max range."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter, ScalarFormatter

    names = {
        "rope": "plain RoPE",
        "linear": "PI",
        "ntk": "NTK-aware",
        "dynamic": f"dynamic NTK (factor {DYNAMIC_FACTOR:g})",
        "yarn": "YaRN",
        "llama3": "Llama 3",
    }
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    lens = [str(E) for E in results["eval_lens"]]
    for method, row in results["ppl"].items():
        _band(
            left, [int(E) for E in lens], [row[E] for E in lens], method, names.get(method, method)
        )
    left.set(xscale="log", yscale="log", xlabel="evaluation length E", ylabel="perplexity")
    left.set_xticks([int(E) for E in lens], lens)
    left.set_title("No fine-tuning (factor E/L)")
    for method, curve in results["finetune_at_2L"].items():
        label = f"{names.get(method, method)} (fine-tuned at 2L)"
        _band(right, [int(k) for k in curve], list(curve.values()), method, label)
    right.set(yscale="log", xlabel="fine-tuning steps at 2L", ylabel="perplexity at 2L")
    right.set_title("A short fine-tune at 2L")
    for ax in (left, right):
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))  # 6, 7, 8, 9, 20 …
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posenc.experiments.scaling_study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, seconds")
    parser.add_argument("--finetune-steps", type=int, help="fine-tuning steps at 2L")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; quick: 0)")
    parser.add_argument("--corpus", help="a folder or text file instead of the stdlib sources")
    parser.add_argument("--out", default="results")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="pool results files of other seeds, no run"
    )
    args = parser.parse_args(argv)
    if args.merge:
        return report(
            merge_results([json.loads(Path(f).read_text()) for f in args.merge]),
            Path(args.out),
            "full",
        )
    from posenc.experiments.extrapolation import QUICK

    s = Settings(**QUICK) if args.quick else Settings()
    steps = args.finetune_steps if args.finetune_steps is not None else (20 if args.quick else 200)
    if steps < 1:
        parser.error(f"--finetune-steps must be >= 1, got {steps}")
    seeds = args.seeds or ([0] if args.quick else list(SEEDS))
    results = run_scaling_study(
        s, seeds=seeds, finetune_steps=steps, eval_every=max(1, steps // 8), corpus_path=args.corpus
    )
    return report(results, Path(args.out), "quick" if args.quick else "full")


def report(results: dict, out: Path, kind: str) -> int:
    """Write results/rope_scaling_{kind}.json and .png and print the tables."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"rope_scaling_{kind}"
    write_json(out / f"{stem}.json", results)
    plot_results(results, out / f"{stem}.png")
    print(format_pairs(results))
    print(format_table(results))
    for method, curve in results["finetune_at_2L"].items():
        print(
            f"fine-tune {method} at 2L: "
            + ", ".join(f"{k}: {_mean_sd(v)}" for k, v in curve.items())
        )
    print(f"wrote {out / stem}.json/.png ({results['wall_time_s']} s on {results['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
