"""Train short, test long: every position scheme on the same data, evaluated at 1×, 2×, 4×, 8×.

    python -m posenc.experiments.extrapolation          # full study (about 10 minutes, 2 cores)
    python -m posenc.experiments.extrapolation --quick  # a one-minute version (tests use it)
    make extrapolation                                  # the full study, written to results/

Each scheme is trained with the same seed, data order, steps and size at length L, then its
perplexity is measured on the same held-out bytes cut into windows of L, 2L, 4L and 8L, and
per position bucket (0–L, L–2L, 2L–4L, 4L–8L), since the mean over a long window mixes
positions the model knows with ones it has never seen.

Extra rows that need no training: ``learned_clamped`` (the learned model with every position
≥ L read from row L − 1; plain ``learned`` cannot run beyond L and is reported as null),
``rope_pi`` and ``rope_ntk`` (the RoPE model with Position Interpolation or NTK-aware scaling
by the factor E / L at evaluation length E).
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from posenc.experiments.data import Corpus, evaluation_windows, load_corpus, training_batches
from posenc.experiments.model import SCHEMES, ModelConfig, TinyLM, with_rope_scaling
from posenc.experiments.styles import style
from posenc.learned import clamped_positions
from posenc.rope_scaling import RopeScaling
from posenc.runtime import machine_name, write_json

ROWS = (
    "nope",
    "learned",
    "learned_clamped",
    "sinusoidal",
    "t5",
    "rope",
    "rope_pi",
    "rope_ntk",
    "alibi",
)
MULTIPLES = (1, 2, 4, 8)  # evaluation lengths, in training lengths L


@dataclass
class Settings:
    train_len: int = 32
    steps: int = 1200
    batch: int = 32
    lr: float = 2e-3
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    eval_tokens: int = 32768  # held-out bytes scored at every evaluation length
    train_bytes: int = 4_000_000
    held_out_bytes: int = 400_000
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    schemes: list[str] = field(default_factory=lambda: list(SCHEMES))

    @property
    def eval_lens(self) -> list[int]:
        return [m * self.train_len for m in MULTIPLES]


QUICK = dict(
    steps=60,
    batch=16,
    d_model=64,
    n_heads=4,
    eval_tokens=2048,
    train_bytes=300_000,
    held_out_bytes=40_000,
    seeds=[0],
)


def train(cfg: ModelConfig, corpus: Corpus, s: Settings, seed: int, progress=None) -> TinyLM:
    """AdamW with a cosine learning-rate decay; the data order depends only on the seed."""
    torch.manual_seed(seed)
    model = TinyLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.steps)
    model.train()
    for ids, targets in training_batches(corpus.train, s.batch, s.train_len, s.steps, seed):
        loss = model.token_losses(ids, targets).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if progress is not None:
            progress.update(1)
    return model.eval()


@torch.no_grad()
def position_losses(
    model: TinyLM,
    corpus: Corpus,
    seq_len: int,
    eval_tokens: int,
    *,
    clamp_to: int | None = None,
    scaling: RopeScaling | None = None,
    batch: int = 64,
) -> torch.Tensor:
    """Mean loss (nats) at each position 0 … seq_len − 1 over the held-out windows.

    ``scaling``: a Hugging Face rope_scaling dict to evaluate a RoPE model with (on a copy of
    it; its trained length is the config's max_position_embeddings)."""
    ids, targets = evaluation_windows(corpus.held_out, seq_len, eval_tokens)
    positions = torch.arange(seq_len)
    if clamp_to is not None:
        positions = clamped_positions(positions, clamp_to)
    if scaling is not None:
        model = with_rope_scaling(model, scaling)
    total = torch.zeros(seq_len, dtype=torch.float64)
    for start in range(0, len(ids), batch):
        losses = model.token_losses(
            ids[start : start + batch], targets[start : start + batch], positions
        )
        total += losses.double().sum(0)
    return (total / len(ids)).float()


def perplexity_from_losses(losses: torch.Tensor) -> float:
    """exp(mean loss in nats)."""
    return math.exp(losses.double().mean().item())


def position_buckets(per_position: torch.Tensor, train_len: int) -> dict[str, float]:
    """Mean loss over positions [0, L), [L, 2L), [2L, 4L), [4L, 8L) that the window covers."""
    out, lo = {}, 0
    for hi in (m * train_len for m in MULTIPLES):
        if hi > len(per_position):
            break
        out[f"{lo}-{hi}"] = per_position[lo:hi].double().mean().item()
        lo = hi
    return out


def evaluate_rows(scheme: str, model: TinyLM, corpus: Corpus, s: Settings) -> dict[str, dict]:
    """{row: {str(E): per-position losses or None}} for the rows this trained model serves."""
    L = s.train_len
    rows: dict[str, dict] = {}

    def run(row, E, **kw):
        rows.setdefault(row, {})[str(E)] = position_losses(model, corpus, E, s.eval_tokens, **kw)

    for E in s.eval_lens:
        if scheme == "learned":
            if E <= L:
                run("learned", E)
            else:
                rows.setdefault("learned", {})[str(E)] = None  # no row for position ≥ L
            run("learned_clamped", E, clamp_to=L)
        else:
            run(scheme, E)
        if scheme == "rope":
            factor = max(1.0, E / L)
            run("rope_pi", E, scaling={"rope_type": "linear", "factor": factor})
            run("rope_ntk", E, scaling={"rope_type": "ntk", "factor": factor})
    return rows


def check_settings(s: Settings) -> None:
    """Refuse settings the study cannot run, naming the field and what it accepts."""
    unknown = set(s.schemes) - set(SCHEMES)
    if unknown:
        raise ValueError(f"schemes must be among {SCHEMES}, got {sorted(unknown)}")
    longest = max(s.eval_lens)  # every evaluation length must cut the held-out bytes evenly
    if s.eval_tokens % longest:
        raise ValueError(
            f"eval_tokens must be a multiple of the longest evaluation length "
            f"{max(MULTIPLES)} × train_len = {longest}, got {s.eval_tokens}"
        )


def train_and_evaluate(scheme: str, seed: int, corpus: Corpus, s: Settings, bar) -> dict:
    """Train one scheme with one seed: {row: {str(E): per-position losses or None}}."""
    cfg = ModelConfig(
        scheme=scheme,
        d_model=s.d_model,
        n_layers=s.n_layers,
        n_heads=s.n_heads,
        max_len=s.train_len,
    )
    model = train(cfg, corpus, s, seed, bar)
    return evaluate_rows(scheme, model, corpus, s)


def mean_over_seeds(per_seed: dict, buckets: dict) -> tuple[dict, dict]:
    """Perplexity per row and length (None where a row cannot run), and loss per bucket."""
    rows = [r for r in ROWS if r in per_seed]
    ppl = {
        r: {E: (None if None in v else sum(v) / len(v)) for E, v in per_seed[r].items()}
        for r in rows
    }
    position_loss = {
        r: {E: {k: sum(d[k] for d in v) / len(v) for k in v[0]} for E, v in buckets[r].items()}
        for r in rows
        if r in buckets
    }
    return ppl, position_loss


def run_study(s: Settings, corpus_path: str | None = None, *, show_progress: bool = True) -> dict:
    """Train every scheme for every seed, evaluate every row, return the results dict."""
    from tqdm.auto import tqdm

    check_settings(s)
    start = time.time()
    corpus = load_corpus(corpus_path, train_bytes=s.train_bytes, held_out_bytes=s.held_out_bytes)
    per_seed: dict[str, dict[str, list]] = {}  # row → length → perplexity per seed
    buckets: dict[str, dict[str, list]] = {}  # row → length → bucket losses per seed
    total = len(s.schemes) * len(s.seeds) * s.steps
    with tqdm(total=total, desc="training", unit="step", disable=not show_progress) as bar:
        for scheme in s.schemes:
            for seed in s.seeds:
                bar.set_postfix_str(f"{scheme}, seed {seed}")
                for row, by_len in train_and_evaluate(scheme, seed, corpus, s, bar).items():
                    for E, losses in by_len.items():
                        ppl = None if losses is None else perplexity_from_losses(losses)
                        per_seed.setdefault(row, {}).setdefault(E, []).append(ppl)
                        if losses is not None:
                            b = buckets.setdefault(row, {}).setdefault(E, [])
                            b.append(position_buckets(losses, s.train_len))
    ppl, position_loss = mean_over_seeds(per_seed, buckets)
    return {
        "train_len": s.train_len,
        "eval_lens": s.eval_lens,
        "ppl": ppl,
        "position_loss": position_loss,
        "per_seed": {r: per_seed[r] for r in ppl},
        "settings": asdict(s),
        "corpus": corpus_summary(corpus),
        **provenance(start),
    }


def corpus_summary(corpus: Corpus) -> dict:
    return {
        "source": corpus.source,
        "sha256": corpus.sha256,
        "train_bytes": len(corpus.train),
        "held_out_bytes": len(corpus.held_out),
    }


def provenance(start: float) -> dict:
    """What a results file says about where and how long it ran."""
    return {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "machine": machine_name(),
        "wall_time_s": round(time.time() - start, 1),
    }


def plot_results(results: dict, path: str | Path | None = None):
    """Perplexity vs evaluation length, one line per row; saved to ``path`` when given."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    lens = results["eval_lens"]
    for row, by_len in results["ppl"].items():
        xs = [E for E in lens if by_len.get(str(E)) is not None]
        ax.plot(xs, [by_len[str(E)] for E in xs], **style(row))
    ax.axvline(results["train_len"], color="grey", lw=1, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xticks(lens, [str(E) for E in lens])
    ax.set_xlabel("evaluation length (bytes); training length dotted")
    ax.set_ylabel("perplexity per byte (log scale)")
    ax.set_title(f"Train at {results['train_len']}, test longer ({results['machine']})", fontsize=9)
    ax.legend(fontsize=8, ncol=3)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_position_loss(results: dict, length: int | None = None):
    """Mean loss per position bucket in windows of ``length`` (default: the longest), one line
    per row that can run at that length."""
    import matplotlib.pyplot as plt

    length = length or max(results["eval_lens"])
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    buckets: list[str] = []
    for row, by_len in results["position_loss"].items():
        if str(length) in by_len:
            buckets = list(by_len[str(length)])
            ax.plot(range(len(buckets)), [by_len[str(length)][b] for b in buckets], **style(row))
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel(f"positions in a {length}-byte window (training length {results['train_len']})")
    ax.set_ylabel("mean loss (nats per byte)")
    ax.set_title("Loss by position bucket")
    ax.legend(fontsize=8, ncol=3)
    return fig


def format_table(results: dict) -> str:
    lens = [str(E) for E in results["eval_lens"]]
    lines = ["scheme".ljust(16) + "".join(f"ppl@{E}".rjust(11) for E in lens)]
    for row, by_len in results["ppl"].items():
        cells = ["cannot run" if by_len[E] is None else f"{by_len[E]:.3f}" for E in lens]
        lines.append(row.ljust(16) + "".join(c.rjust(11) for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posenc.experiments.extrapolation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, about a minute")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1; quick: 0)")
    parser.add_argument("--steps", type=int, help="training steps per scheme and seed")
    parser.add_argument("--schemes", nargs="+", choices=SCHEMES, help="subset of schemes")
    parser.add_argument("--corpus", help="a folder or text file instead of the stdlib sources")
    parser.add_argument("--out", default="results", help="folder for the JSON and the plot")
    parser.add_argument("--name", help="file name part (default: quick or full)")
    parser.add_argument("--threads", type=int, help="torch threads (results depend on it)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    s = Settings(**QUICK) if args.quick else Settings()
    if args.seeds:
        s.seeds = args.seeds
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"--steps must be >= 1, got {args.steps}")
        s.steps = args.steps
    if args.schemes:
        s.schemes = args.schemes
    try:
        results = run_study(s, args.corpus)
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or ("quick" if args.quick else "full")
    json_path = out / f"extrapolation_{name}.json"
    write_json(json_path, results)
    plot_results(results, out / f"extrapolation_{name}.png")
    print(format_table(results))
    print(f"wrote {json_path} ({results['wall_time_s']} s on {results['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
