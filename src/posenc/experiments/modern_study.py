"""Today's tricks on the tiny RoPE LM: attention sinks with a rolling cache, and logN scaling.

    python -m posenc.experiments.modern_study          # full study (under 10 minutes, 2 cores)
    python -m posenc.experiments.modern_study --quick  # seconds (tests use it)

For each seed, one RoPE model is trained at length L (notebook 06's training loop), then:

* **streaming**: held-out streams of 8L bytes are decoded token by token with a rolling KV
  cache of L entries: no sinks (window attention), 4 sinks with positions re-assigned within
  the cache (StreamingLLM), 4 sinks at their original positions; beside one forward over the
  whole stream (dense) and the sliding window re-computed for every token (exact, slow);
* **logN**: perplexity at L, 2L, 4L, 8L and the mean attention entropy of the queries in
  each position bucket, with and without the query scaled by max(1, log(m + 1) / log L);
* **xPos**: the same 2-layer model with xPos instead of RoPE, perplexity at L … 8L beside RoPE;
* **NoPE layers**: a 4-layer RoPE model beside the same model with no positions in its 4th
  layer (Llama 4's interleaving), perplexity at L … 8L.

Mean ± spread (half the range) over seeds. The RoPE base is chosen so that the share of
pairs whose wavelength exceeds L is close to Llama 2's at 4K (18 of 64 pairs).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from posenc.attention import PositionScheme, attention_weights
from posenc.experiments.data import evaluation_windows, load_corpus
from posenc.experiments.extrapolation import Settings as TrainSettings
from posenc.experiments.extrapolation import corpus_summary, position_losses, provenance, train
from posenc.experiments.model import ModelConfig, TinyLM
from posenc.experiments.streaming import dense_losses, recompute_losses, stream_losses
from posenc.logn_scaling import LogNScaled
from posenc.rope import rope_frequencies
from posenc.runtime import write_json

STREAM_ROWS = ("dense", "window", "sinks4", "sinks4_original_positions", "recompute")
STYLES = {  # one colour and marker per row, in every plot of this study
    "dense": dict(color="tab:red", marker="", ls="-"),
    "window": dict(color="tab:orange", marker="", ls="-"),
    "sinks4": dict(color="tab:green", marker="", ls="-"),
    "sinks4_original_positions": dict(color="tab:purple", marker="", ls="--"),
    "recompute": dict(color="black", marker="", ls=":"),
    "plain": dict(color="tab:blue", marker="o", ls="-"),
    "logn": dict(color="tab:cyan", marker="s", ls="--"),
}
MULTIPLES = (1, 2, 4, 8)


@dataclass
class Settings:
    train_len: int = 32
    steps: int = 500
    batch: int = 32
    lr: float = 3e-3
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    rope_base: float = 10.0  # head_dim 16, L = 32: 2 of 8 pairs never turn (Llama 2: 18 of 64)
    sinks: int = 4
    nope_layers: int = 4  # depth of the two models of the NoPE-layer comparison
    stream_seqs: int = 8  # held-out streams of 8L bytes each
    eval_tokens: int = 2048
    train_bytes: int = 1_000_000
    held_out_bytes: int = 100_000
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


QUICK = dict(
    train_len=4,
    steps=3,
    batch=4,
    d_model=16,
    n_heads=2,
    rope_base=10000.0,
    sinks=2,
    stream_seqs=1,
    eval_tokens=64,
    train_bytes=20_000,
    held_out_bytes=4_000,
    seeds=[0, 1],
)


def unseen_pairs(head_dim: int, base: float, length: int) -> int:
    """How many RoPE pairs turn less than once over ``length`` positions (wavelength > L)."""
    return int((2 * math.pi / rope_frequencies(head_dim, base) > length).sum())


class EntropyProbe(PositionScheme):
    """Pass-through scheme that records, per query position, the mean attention entropy
    (nats) and the mean weight on key 0 (the would-be attention sink)."""

    def __init__(self, inner: PositionScheme):
        super().__init__()
        self.inner, self.records, self.first_key = inner, [], []

    def embed(self, x, positions):
        return self.inner.embed(x, positions)

    def rotate(self, q, k, positions):
        q, k = self.inner.rotate(q, k, positions)
        w = attention_weights(q, k, causal=True)  # (batch, heads, seq, seq)
        entropy = -(w * torch.log(w.clamp_min(1e-30))).sum(-1)  # (batch, heads, seq)
        self.records.append(entropy.mean(dim=(0, 1)))  # (seq,)
        self.first_key.append(w[..., 0].mean(dim=(0, 1)))  # (seq,): weight on key 0
        return q, k

    def bias(self, q_len, k_len, **where):
        return self.inner.bias(q_len, k_len, **where)


@contextmanager
def swapped_scheme(model: TinyLM, scheme: PositionScheme):
    """Run ``model`` with another scheme in every layer; put the old one back afterwards."""
    old = model.scheme
    for target in [model, *(b.attn for b in model.blocks)]:
        target.scheme = scheme
    try:
        yield
    finally:
        for target in [model, *(b.attn for b in model.blocks)]:
            target.scheme = old


def bucket_means(per_position: torch.Tensor, L: int) -> dict[str, float]:
    """Mean over positions [0, L), [L, 2L), [2L, 4L), [4L, 8L) that the curve covers."""
    out, lo = {}, 0
    for hi in (m * L for m in MULTIPLES):
        if hi <= len(per_position):
            out[f"{lo}-{hi}"] = per_position[lo:hi].double().mean().item()
        lo = hi
    return out


def streaming_rows(model: TinyLM, ids, targets, s: Settings) -> dict[str, torch.Tensor]:
    """Per-position mean loss for each way of attending over a long stream."""
    L, kw = s.train_len, dict(cache_size=s.train_len)
    rows = {
        "dense": dense_losses(model, ids, targets),
        "window": stream_losses(model, ids, targets, sinks=0, reassign=True, **kw),
        "sinks4": stream_losses(model, ids, targets, sinks=s.sinks, reassign=True, **kw),
        "sinks4_original_positions": stream_losses(
            model, ids, targets, sinks=s.sinks, reassign=False, **kw
        ),
        "recompute": recompute_losses(model, ids, targets, L),
    }
    return {name: losses.mean(0) for name, losses in rows.items()}


@torch.no_grad()
def logn_rows(model: TinyLM, corpus, s: Settings) -> dict[str, dict]:
    """{plain|logn: {E: {"ppl": …, "entropy": {bucket: …}}}}."""
    out: dict[str, dict] = {}
    for name in ("plain", "logn"):
        for E in (m * s.train_len for m in MULTIPLES):
            ids, targets = evaluation_windows(corpus.held_out, E, s.eval_tokens)
            inner = model.scheme if name == "plain" else LogNScaled(model.scheme, s.train_len)
            probe = EntropyProbe(inner)
            with swapped_scheme(model, probe):
                losses = model.token_losses(ids, targets, torch.arange(E))
            entropy = torch.stack(probe.records).mean(0)  # (E,): over layers
            first_key = torch.stack(probe.first_key)  # (layers, E)
            uniform = 1.0 / torch.arange(1, E + 1)  # what key 0 gets if every key weighs the same
            out.setdefault(name, {})[str(E)] = {
                "ppl": math.exp(losses.double().mean().item()),
                "entropy": bucket_means(entropy, s.train_len),
                "sink_ratio": {  # per layer: weight on key 0 over the uniform share
                    str(n): bucket_means(first_key[n] / uniform, s.train_len)
                    for n in range(len(first_key))
                },
            }
    return out


def rope_config(
    s: Settings, n_layers: int, nope_every: int = 0, scheme: str = "rope"
) -> ModelConfig:
    return ModelConfig(
        scheme=scheme,
        d_model=s.d_model,
        n_layers=n_layers,
        n_heads=s.n_heads,
        max_len=s.train_len,
        rope_base=s.rope_base,
        nope_every=nope_every,
    )


def nope_layer_rows(seed: int, corpus, s: Settings, bar=None) -> dict[str, dict]:
    """{rope|rope_nope4: {E: perplexity}} for two models of depth s.nope_layers."""
    ts = TrainSettings(train_len=s.train_len, steps=s.steps, batch=s.batch, lr=s.lr)
    out: dict[str, dict] = {}
    for name, every in (("rope", 0), ("rope_nope4", 4)):
        model = train(rope_config(s, s.nope_layers, every), corpus, ts, seed, bar)
        for E in (m * s.train_len for m in MULTIPLES):
            losses = position_losses(model, corpus, E, s.eval_tokens)
            out.setdefault(name, {})[str(E)] = math.exp(losses.double().mean().item())
    return out


def length_ppl(model: TinyLM, corpus, s: Settings) -> dict[str, float]:
    """Perplexity at L, 2L, 4L, 8L over the same held-out bytes."""
    return {
        str(E): math.exp(position_losses(model, corpus, E, s.eval_tokens).double().mean().item())
        for E in (m * s.train_len for m in MULTIPLES)
    }


def one_seed(seed: int, corpus, s: Settings, bar=None) -> dict:
    ts = TrainSettings(train_len=s.train_len, steps=s.steps, batch=s.batch, lr=s.lr)
    model = train(rope_config(s, s.n_layers), corpus, ts, seed, bar)
    stream_len = max(MULTIPLES) * s.train_len
    ids, targets = evaluation_windows(corpus.held_out, stream_len, s.stream_seqs * stream_len)
    curves = streaming_rows(model, ids, targets, s)
    return {
        "stream_curve": {k: v.tolist() for k, v in curves.items()},
        "stream_ppl": {k: bucket_means(v, s.train_len) for k, v in curves.items()},
        "logn": logn_rows(model, corpus, s),
        "nope_layers": nope_layer_rows(seed, corpus, s, bar),
        "xpos": {
            "rope": length_ppl(model, corpus, s),
            "xpos": length_ppl(
                train(rope_config(s, s.n_layers, 0, "xpos"), corpus, ts, seed, bar), corpus, s
            ),
        },
    }


def spread(values: list[float]) -> dict[str, float]:
    """Mean and half the range over seeds."""
    return {"mean": sum(values) / len(values), "spread": (max(values) - min(values)) / 2}


def summarise(per_seed: list[dict]) -> dict:
    """Perplexity per stream row and bucket, logN ppl/entropy per length: mean ± spread."""
    first = per_seed[0]
    stream = {
        row: {b: spread([math.exp(r["stream_ppl"][row][b]) for r in per_seed]) for b in buckets}
        for row, buckets in first["stream_ppl"].items()
    }
    logn = {
        name: {
            E: {
                "ppl": spread([r["logn"][name][E]["ppl"] for r in per_seed]),
                "entropy": {
                    b: spread([r["logn"][name][E]["entropy"][b] for r in per_seed])
                    for b in cell["entropy"]
                },
            }
            for E, cell in by_len.items()
        }
        for name, by_len in first["logn"].items()
    }
    nope = {
        name: {E: spread([r["nope_layers"][name][E] for r in per_seed]) for E in by_len}
        for name, by_len in first["nope_layers"].items()
    }
    xpos = {
        name: {E: spread([r["xpos"][name][E] for r in per_seed]) for E in by_len}
        for name, by_len in first["xpos"].items()
    }
    return {"stream_ppl": stream, "logn": logn, "nope_layers": nope, "xpos": xpos}


def run_study(s: Settings, *, show_progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    start = time.time()
    corpus = load_corpus(None, train_bytes=s.train_bytes, held_out_bytes=s.held_out_bytes)
    head_dim = s.d_model // s.n_heads
    per_seed = []
    total = 4 * len(s.seeds) * s.steps  # four models per seed
    with tqdm(total=total, disable=not show_progress, unit="step") as bar:
        for seed in s.seeds:
            per_seed.append(one_seed(seed, corpus, s, bar))
    return {
        "train_len": s.train_len,
        "head_dim": head_dim,
        "unseen_pairs": unseen_pairs(head_dim, s.rope_base, s.train_len),
        "pairs": head_dim // 2,
        **summarise(per_seed),
        "per_seed": per_seed,
        "settings": asdict(s),
        "corpus": corpus_summary(corpus),
        **provenance(start),
    }


def plot_results(results: dict, path: str | Path | None = None):
    """Left: loss along the stream (mean over seeds, band = range) per way of attending.
    Right: attention entropy per position bucket at 8L, with and without logN."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    L = results["train_len"]
    for row in STREAM_ROWS:
        curves = torch.tensor([r["stream_curve"][row] for r in results["per_seed"]])  # (seeds, N)
        kernel = torch.ones(1, 1, L // 4) / (L // 4)  # smooth over L/4 positions for the eye
        smooth = torch.nn.functional.conv1d(curves[:, None], kernel)[:, 0].exp()  # perplexity
        xs = torch.arange(smooth.shape[1]) + L // 4 - 1
        style = STYLES[row]
        left.plot(xs, smooth.mean(0), label=row, **style)
        low, high = smooth.min(0).values, smooth.max(0).values
        left.fill_between(xs, low, high, alpha=0.2, color=style["color"])
    left.axvline(L, color="grey", lw=1, ls=":")
    left.set_yscale("log")
    left.set_xlabel(f"position in the stream (cache = L = {L}, dotted)")
    left.set_ylabel("perplexity (log scale)")
    left.legend(fontsize=7)
    E = str(max(MULTIPLES) * L)
    for name in ("plain", "logn"):
        ent = results["logn"][name][E]["entropy"]
        style = STYLES[name]
        means = [v["mean"] for v in ent.values()]
        errs = [v["spread"] for v in ent.values()]
        right.errorbar(list(ent), means, yerr=errs, label=name, capsize=3, **style)
    right.set_xlabel("query positions")
    right.set_ylabel("mean attention entropy (nats)")
    right.legend(fontsize=8)
    fig.suptitle(f"Tiny RoPE LM, L = {L}, {len(results['per_seed'])} seeds ({results['machine']})")
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def format_table(results: dict) -> str:
    """Perplexity per stream bucket (mean ± spread over seeds)."""
    buckets = list(next(iter(results["stream_ppl"].values())))
    lines = ["row".ljust(28) + "".join(b.rjust(16) for b in buckets)]
    for row, cells in results["stream_ppl"].items():
        text = [f"{c['mean']:.2f} ± {c['spread']:.2f}" for c in cells.values()]
        lines.append(row.ljust(28) + "".join(t.rjust(16) for t in text))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m posenc.experiments.modern_study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="tiny settings, seconds")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2)")
    parser.add_argument("--out", default="results", help="folder for the JSON and the plot")
    parser.add_argument("--threads", type=int, help="torch threads (results depend on it)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    s = Settings(**QUICK) if args.quick else Settings()
    if args.seeds:
        s.seeds = args.seeds
    results = run_study(s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "full"
    json_path = write_json(out / f"modern_{name}.json", results)
    plot_results(results, out / f"modern_{name}.png")
    print(format_table(results))
    print(f"wrote {json_path} ({results['wall_time_s']} s on {results['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
