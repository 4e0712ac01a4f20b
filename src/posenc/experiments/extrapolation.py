"""Train short, test long: every position scheme on the same data, evaluated at 1×, 2×, 4×, 8×.

    python -m posenc.experiments.extrapolation          # full study (3 seeds, ~15 min, 2 cores)
    python -m posenc.experiments.extrapolation --quick  # a version of under a minute (tests use it)
    make extrapolation                                  # the full study, written to results/

Each scheme is trained with the same seeds, data order, steps and size at length L, then its
perplexity is measured on the same held-out bytes cut into windows of L, 2L, 4L and 8L, and
per position bucket (0–L, L–2L, 2L–4L, 4L–8L), since the mean over a long window mixes
positions the model knows with ones it has never seen. Every figure is the mean over seeds,
with its spread (sample sd, min, max) beside it.

Context use (:mod:`posenc.experiments.context_use`): the tokens at positions 4L … 8L − 1 are
scored inside their 8L window and again with only the last L bytes as context; a scheme whose
8L-window loss is no lower does not use the extra context, however flat its perplexity.

Extra rows that need no training: ``learned_clamped`` (the learned model with every position
≥ L read from row L − 1; plain ``learned`` cannot run beyond L and is reported as null),
``rope_pi`` and ``rope_ntk`` (the RoPE model with Position Interpolation or NTK-aware scaling
by the factor E / L at evaluation length E).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from posenc.experiments.context_use import short_context_loss
from posenc.experiments.data import Corpus, evaluation_windows, load_corpus, training_batches
from posenc.experiments.model import SCHEMES, ModelConfig, TinyLM, with_rope_scaling
from posenc.experiments.spread import mean_pm, spread
from posenc.experiments.styles import style
from posenc.learned import clamped_positions
from posenc.rope import LLAMA2_REGIME, slow_pair_count
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
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    schemes: list[str] = field(default_factory=lambda: list(SCHEMES))
    rope_base: float = ModelConfig.rope_base

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


def rope_regime(s: Settings) -> dict:
    """How many RoPE pairs turn less than once within L (their wavelength 2π/θ_i > L), beside
    Llama 2's count at 4096: the share of pairs a model never sees complete a turn in training."""
    head_dim = s.d_model // s.n_heads
    return {
        "base": s.rope_base,
        "head_dim": head_dim,
        "train_len": s.train_len,
        "slow_pairs": slow_pair_count(s.train_len, head_dim, s.rope_base),
        "pairs": head_dim // 2,
        "llama2_slow_pairs": slow_pair_count(
            LLAMA2_REGIME["train_len"], LLAMA2_REGIME["head_dim"], LLAMA2_REGIME["base"]
        ),
        "llama2_pairs": LLAMA2_REGIME["head_dim"] // 2,
    }


def regime_line(regime: dict) -> str:
    """One sentence: this model's share of slow RoPE pairs next to Llama 2's."""
    r = regime
    return (
        f"RoPE regime: base {r['base']:g}, head_dim {r['head_dim']}, L = {r['train_len']}: "
        f"{r['slow_pairs']} of {r['pairs']} pairs turn less than once within L "
        f"(Llama 2 at 4096: {r['llama2_slow_pairs']} of {r['llama2_pairs']})"
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


def train_and_evaluate(
    scheme: str, seed: int, corpus: Corpus, s: Settings, bar
) -> tuple[dict, float]:
    """Train one scheme with one seed: ({row: {str(E): per-position losses or None}}, the
    loss of the tokens at 4L … 8L − 1 when each sees only the last L bytes)."""
    cfg = ModelConfig(
        scheme=scheme,
        d_model=s.d_model,
        n_layers=s.n_layers,
        n_heads=s.n_heads,
        max_len=s.train_len,
        rope_base=s.rope_base,
    )
    model = train(cfg, corpus, s, seed, bar)
    longest = max(s.eval_lens)
    short = short_context_loss(model, corpus.held_out, longest, s.eval_tokens, s.train_len)
    return evaluate_rows(scheme, model, corpus, s), short


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def mean_over_seeds(per_seed: dict, buckets: dict) -> dict:
    """Perplexity and loss per bucket, each as the mean over seeds and its spread (sd, min,
    max); None where a row cannot run."""
    rows = [r for r in ROWS if r in per_seed]
    ppl = {r: {E: None if None in v else mean(v) for E, v in per_seed[r].items()} for r in rows}
    ppl_spread = {
        r: {E: None if None in v else spread(v) for E, v in per_seed[r].items()} for r in rows
    }
    position_loss, position_loss_spread = {}, {}
    for r in (r for r in rows if r in buckets):
        for E, v in buckets[r].items():  # v: one {bucket: loss} per seed
            by_bucket = {k: [d[k] for d in v] for k in v[0]}
            position_loss.setdefault(r, {})[E] = {k: mean(x) for k, x in by_bucket.items()}
            position_loss_spread.setdefault(r, {})[E] = {k: spread(x) for k, x in by_bucket.items()}
    return {
        "ppl": ppl,
        "ppl_spread": ppl_spread,
        "position_loss": position_loss,
        "position_loss_spread": position_loss_spread,
    }


def stats(values: list[float]) -> dict:
    """{"mean", "sd", "min", "max", "per_seed"} of one figure measured once per seed."""
    return {"mean": mean(values), **spread(values), "per_seed": values}


def context_use_summary(context: dict, s: Settings) -> dict:
    """Per row: loss (nats) of the tokens at 4L … 8L − 1 in their 8L window and with only the
    last L bytes as context, and gain = window_L − window_8L (> 0: the extra context helps)."""
    L, longest = s.train_len, max(s.eval_lens)
    rows = {}
    for r in (r for r in ROWS if r in context):
        long = [c["window_8L"] for c in context[r]]
        short = [c["window_L"] for c in context[r]]
        rows[r] = {
            "window_8L": stats(long),
            "window_L": stats(short),
            "gain": stats([b - a for a, b in zip(long, short, strict=True)]),
        }
    return {
        "positions": [longest // 2, longest],
        "long_window": longest,
        "short_window": L,
        "rows": rows,
    }


def run_study(s: Settings, corpus_path: str | None = None, *, show_progress: bool = True) -> dict:
    """Train every scheme for every seed, evaluate every row, return the results dict."""
    from tqdm.auto import tqdm

    check_settings(s)
    regime = rope_regime(s)
    print(regime_line(regime))
    start = time.time()
    corpus = load_corpus(corpus_path, train_bytes=s.train_bytes, held_out_bytes=s.held_out_bytes)
    per_seed: dict[str, dict[str, list]] = {}  # row → length → perplexity per seed
    buckets: dict[str, dict[str, list]] = {}  # row → length → bucket losses per seed
    context: dict[str, list] = {}  # row → {"window_8L", "window_L"} per seed
    longest = str(max(s.eval_lens))
    total = len(s.schemes) * len(s.seeds) * s.steps
    with tqdm(total=total, desc="training", unit="step", disable=not show_progress) as bar:
        for scheme in s.schemes:
            for seed in s.seeds:
                bar.set_postfix_str(f"{scheme}, seed {seed}")
                rows, short = train_and_evaluate(scheme, seed, corpus, s, bar)
                for row, by_len in rows.items():
                    for E, losses in by_len.items():
                        ppl = None if losses is None else perplexity_from_losses(losses)
                        per_seed.setdefault(row, {}).setdefault(E, []).append(ppl)
                        if losses is not None:
                            b = buckets.setdefault(row, {}).setdefault(E, [])
                            b.append(position_buckets(losses, s.train_len))
                    if by_len[longest] is not None:  # the second half of each 8L window
                        long = by_len[longest][int(longest) // 2 :].double().mean().item()
                        context.setdefault(row, []).append({"window_8L": long, "window_L": short})
    raw = {"per_seed": per_seed, "per_seed_position_loss": buckets, "per_seed_context": context}
    return {**summarise(raw, s, regime), "corpus": corpus_summary(corpus), **provenance(start)}


def summarise(raw: dict, s: Settings, regime: dict) -> dict:
    """The results dict (without provenance) from the per-seed measurements ``raw``:
    {"per_seed": ppl, "per_seed_position_loss": bucket dicts, "per_seed_context": …}."""
    summary = mean_over_seeds(raw["per_seed"], raw["per_seed_position_loss"])
    return {
        "train_len": s.train_len,
        "eval_lens": s.eval_lens,
        "rope_regime": regime,
        **summary,
        "context_use": context_use_summary(raw["per_seed_context"], s),
        "per_seed": {r: raw["per_seed"][r] for r in summary["ppl"]},
        "per_seed_position_loss": raw["per_seed_position_loss"],
        "per_seed_context": raw["per_seed_context"],
        "settings": asdict(s),
    }


def merge_results(parts: list[dict]) -> dict:
    """One results dict from runs that differ only in their seeds (e.g. run side by side, one
    process per seed); seeds in the order given. Wall time: the longest part's."""
    if not parts:
        raise ValueError("parts must hold at least one results dict, got none")
    same = lambda d: {k: v for k, v in d["settings"].items() if k != "seeds"}  # noqa: E731
    if any(same(p) != same(parts[0]) or p["corpus"] != parts[0]["corpus"] for p in parts):
        raise ValueError("parts must share every setting but the seeds, and the corpus")
    s = Settings(**{**same(parts[0]), "seeds": [x for p in parts for x in p["settings"]["seeds"]]})
    raw: dict = {"per_seed": {}, "per_seed_position_loss": {}, "per_seed_context": {}}
    for p in parts:
        for key in ("per_seed", "per_seed_position_loss"):
            for row, by_len in p[key].items():
                for E, values in by_len.items():
                    raw[key].setdefault(row, {}).setdefault(E, []).extend(values)
        for row, values in p["per_seed_context"].items():
            raw["per_seed_context"].setdefault(row, []).extend(values)
    out = {**summarise(raw, s, parts[0]["rope_regime"]), "corpus": parts[0]["corpus"]}
    prov = {k: parts[0][k] for k in ("torch_version", "python_version", "machine")}
    walls = [p["wall_time_s"] for p in parts]
    return {**out, **prov, "wall_time_s": max(walls), "wall_time_s_per_part": walls}


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


def n_seeds(results: dict) -> int:
    return len(results["settings"]["seeds"])


def over_seeds(results: dict) -> str:
    """The seeds a table summarises: mean ± sd over n seeds, or one seed."""
    n = n_seeds(results)
    return f"mean ± sd over {n} seeds" if n > 1 else "one seed"


def seeds_note(results: dict) -> str:
    """What a plot's lines and bands are, e.g. "mean of 3 seeds, band = min–max"."""
    if "settings" not in results:
        return "one value per point"
    n = n_seeds(results)
    return f"mean of {n} seeds, band = min–max" if n > 1 else "one seed"


def band(ax, xs: list, spreads: list | None, row: str) -> None:
    """The min–max range over seeds around a mean line, in the row's colour (none without
    spreads, e.g. a results dict from before seeds were summarised)."""
    if spreads and all(s is not None for s in spreads):
        lo, hi = [s["min"] for s in spreads], [s["max"] for s in spreads]
        ax.fill_between(xs, lo, hi, color=style(row)["color"], alpha=0.18, lw=0)


def plot_results(results: dict, path: str | Path | None = None):
    """Perplexity vs evaluation length, one line per row (mean over seeds, band: min–max);
    saved to ``path`` when given."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    fig, ax = plt.subplots(figsize=(8, 4), layout="constrained")
    lens = results["eval_lens"]
    for row, by_len in results["ppl"].items():
        xs = [E for E in lens if by_len.get(str(E)) is not None]
        ax.plot(xs, [by_len[str(E)] for E in xs], **style(row))
        spreads = results.get("ppl_spread", {}).get(row)
        band(ax, xs, spreads and [spreads[str(E)] for E in xs], row)
    ax.axvline(results["train_len"], color="grey", lw=1, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xticks(lens, [str(E) for E in lens])
    ax.set_xlabel("evaluation length (bytes); training length dotted")
    ax.set_ylabel("perplexity per byte (log scale)")
    ax.set_title(
        f"Train at {results['train_len']}, test longer: {seeds_note(results)} "
        f"({results['machine']})",
        fontsize=9,
    )
    ax.legend(fontsize=8, ncol=3)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def plot_position_loss(results: dict, length: int | None = None):
    """Mean loss per position bucket in windows of ``length`` (default: the longest), one line
    per row that can run at that length (mean over seeds, band: min–max)."""
    import matplotlib.pyplot as plt

    length = length or max(results["eval_lens"])
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    buckets: list[str] = []
    for row, by_len in results["position_loss"].items():
        if str(length) in by_len:
            buckets = list(by_len[str(length)])
            xs = list(range(len(buckets)))
            ax.plot(xs, [by_len[str(length)][b] for b in buckets], **style(row))
            spreads = results.get("position_loss_spread", {}).get(row, {}).get(str(length))
            band(ax, xs, spreads and [spreads[b] for b in buckets], row)
    ax.set_xticks(range(len(buckets)), buckets)
    ax.set_xlabel(f"positions in a {length}-byte window (training length {results['train_len']})")
    ax.set_ylabel("mean loss (nats per byte)")
    ax.set_title(f"Loss by position bucket: {seeds_note(results)}", fontsize=9)
    ax.legend(fontsize=8, ncol=3)
    return fig


def format_table(results: dict) -> str:
    """Perplexity per row and length: mean ± sample sd over the seeds."""
    lens = [str(E) for E in results["eval_lens"]]
    lines = [f"perplexity per byte, {over_seeds(results)}"]
    lines.append("scheme".ljust(16) + "".join(f"ppl@{E}".rjust(16) for E in lens))
    for row, by_len in results["ppl"].items():
        spreads = results["ppl_spread"][row]
        cells = [
            "cannot run" if by_len[E] is None else mean_pm(by_len[E], spreads[E]) for E in lens
        ]
        lines.append(row.ljust(16) + "".join(c.rjust(16) for c in cells))
    return "\n".join(lines)


def plot_context_use(results: dict):
    """Loss of the tokens at 4L … 8L − 1 with only the last L bytes (left of each pair) and
    inside their 8L window (right), per row: mean over seeds, bars = min–max."""
    import matplotlib.pyplot as plt

    c = results["context_use"]
    fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
    for i, (row, r) in enumerate(c["rows"].items()):
        look = style(row)
        for dx, key in ((-0.15, "window_L"), (0.15, "window_8L")):
            m = r[key]
            ax.errorbar(
                i + dx,
                m["mean"],
                yerr=[[m["mean"] - m["min"]], [m["max"] - m["mean"]]],
                color=look["color"],
                marker=look["marker"],
                mfc="white" if key == "window_L" else look["color"],
                capsize=3,
            )
        ax.plot([i - 0.15, i + 0.15], [r["window_L"]["mean"], r["window_8L"]["mean"]], **look)
    ax.set_xticks(range(len(c["rows"])), list(c["rows"]), fontsize=8)
    lo, hi = c["positions"]
    ax.set_ylabel("mean loss (nats per byte)")
    ax.set_title(
        f"Tokens at {lo}–{hi}: only the last {c['short_window']} bytes as context (open) vs "
        f"the whole {c['long_window']}-byte window (filled)\nfilled lower than open: the "
        f"scheme uses the extra context ({seeds_note(results).replace('band', 'bars')})",
        fontsize=9,
    )
    return fig


def context_verdict(gain: dict) -> str:
    """From the per-seed gains (loss with L bytes − loss in the 8L window): does the scheme use
    the context beyond L? Only when every seed's 8L-window loss is lower."""
    if gain["min"] > 0:
        return "uses it"
    if gain["max"] <= 0:
        return "does not use it"
    return "tie (seeds disagree)"


def format_context_use(results: dict) -> str:
    """The context-use table: loss of the same tokens with 8L and with L bytes of context."""
    c = results["context_use"]
    lo, hi = c["positions"]
    lines = [
        f"loss (nats per byte) of the tokens at positions {lo}–{hi}, {over_seeds(results)}",
        "scheme".ljust(16)
        + f"{c['long_window']}-byte window".rjust(17)
        + f"last {c['short_window']} bytes".rjust(17)
        + "gain".rjust(17)
        + "   extra context",
    ]
    for row, r in c["rows"].items():
        cells = [mean_pm(r[k]["mean"], r[k]) for k in ("window_8L", "window_L", "gain")]
        lines.append(
            row.ljust(16) + "".join(x.rjust(17) for x in cells) + "   " + context_verdict(r["gain"])
        )
    return "\n".join(lines)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The study's settings from the command line (quick or full, then the overrides)."""
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    s = Settings(**QUICK) if args.quick else Settings()
    if args.seeds:
        s.seeds = args.seeds
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        s.steps = args.steps
    if args.schemes:
        s.schemes = args.schemes
    return s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posenc.experiments.extrapolation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, about a minute")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2; quick: 0)")
    parser.add_argument("--steps", type=int, help="training steps per scheme and seed")
    parser.add_argument("--schemes", nargs="+", choices=SCHEMES, help="subset of schemes")
    parser.add_argument("--corpus", help="a folder or text file instead of the stdlib sources")
    parser.add_argument("--out", default="results", help="folder for the JSON and the plot")
    parser.add_argument("--name", help="file name part (default: quick or full)")
    parser.add_argument("--threads", type=int, help="torch threads (results depend on it)")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="merge runs that differ only in their seeds"
    )
    args = parser.parse_args(argv)
    try:
        if args.merge:
            results = merge_results([json.loads(Path(f).read_text()) for f in args.merge])
            print(regime_line(results["rope_regime"]))
        else:
            results = run_study(settings_from_args(args), args.corpus)
    except ValueError as err:
        parser.error(str(err))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = args.name or ("quick" if args.quick else "full")
    json_path = out / f"extrapolation_{name}.json"
    write_json(json_path, results)
    plot_results(results, out / f"extrapolation_{name}.png")
    print(format_table(results))
    print(format_context_use(results))
    print(f"wrote {json_path} ({results['wall_time_s']} s on {results['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
