"""What each position scheme costs: time and memory, on CPU or GPU.

    python -m posenc.experiments.bench                       # CPU, float32, full (a few minutes)
    python -m posenc.experiments.bench --quick               # seconds; tests use it
    python -m posenc.experiments.bench --device cuda --dtype bfloat16
    make bench / make bench-gpu

Part A: one causal multi-head attention layer (projections included), forward + backward, for
every scheme, at several lengths: time and extra peak memory relative to NoPE.
Part B: RoPE formulations on one (batch, heads, seq, head_dim) tensor, against a plain copy of
the same tensor measured in the same run (RoPE is elementwise: a copy is its speed limit).
Part C: ALiBi without an L×L bias in memory (blockwise), against the materialised bias.

Timing: warm-up, then repeats; the median and the spread (interquartile range) are kept.
On CUDA every timed call is bracketed by CUDA events. Results: results/bench_<device>.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from posenc.alibi import alibi_slopes, bias_from_slopes
from posenc.attention import MultiHeadAttention, attention_sdpa
from posenc.experiments.model import SCHEMES, ModelConfig, make_scheme
from posenc.rope import apply_rope, apply_rope_complex, rope_cached, rope_cos_sin, rotate_half
from posenc.runtime import cpu_name, write_json

# ----------------------------------------------------------------------------------------
# Timing and memory
# ----------------------------------------------------------------------------------------


def time_call(
    fn: Callable[[], object], device: torch.device, *, warmup: int = 2, repeats: int = 5
) -> dict[str, float]:
    """Median and interquartile range of ``repeats`` timed calls, in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1000)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_ms": statistics.median(times), "iqr_ms": q[2] - q[0], "repeats": repeats}


def machine_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({torch.get_num_threads()} threads)"


def file_label(device: torch.device) -> str:
    """A file-name-safe device name: 'cpu' or e.g. 'nvidia-h100-80gb-hbm3'."""
    if device.type == "cpu":
        return "cpu"
    name = torch.cuda.get_device_name(device).lower()
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


# ----------------------------------------------------------------------------------------
# Part A: one attention layer per scheme
# ----------------------------------------------------------------------------------------

LAYER = {"d_model": 512, "n_heads": 8, "batch": 1}


def _layer(scheme: str, seq: int, device, dtype):
    cfg = ModelConfig(
        scheme=scheme, d_model=LAYER["d_model"], n_heads=LAYER["n_heads"], max_len=seq
    )
    pos_scheme = make_scheme(cfg)
    layer = MultiHeadAttention(cfg.d_model, cfg.n_heads, pos_scheme).to(device, dtype)
    x = torch.randn(
        LAYER["batch"], seq, cfg.d_model, device=device, dtype=dtype, requires_grad=True
    )
    positions = torch.arange(seq, device=device)

    def step():
        h = pos_scheme.embed(x, positions)  # absolute schemes act here, the others inside
        layer(h, positions).sum().backward()

    return step


def _cpu_peak_extra_bytes(scheme: str, seq: int, dtype: str) -> int:
    """Peak resident-memory growth of one forward + backward, in a fresh process (CPU).

    Read from Linux's VmHWM (the process's resident high-water mark), which a new process
    starts afresh; ``ru_maxrss`` would not do: it is inherited from the parent across exec.
    """
    code = (
        "import torch\n"
        "from posenc.experiments.bench import _layer\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM'):\n"
        "            return int(line.split()[1]) * 1024\n"
        f"step = _layer({scheme!r}, {seq}, torch.device('cpu'), torch.{dtype})\n"
        "before = hwm()\n"
        "step()\n"
        "print(hwm() - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def part_a(lengths: list[int], device, dtype, *, measure_memory: bool, progress) -> list[dict]:
    rows = []
    for seq in lengths:
        for scheme in SCHEMES:
            progress.set_postfix_str(f"A: {scheme} @ {seq}")
            step = _layer(scheme, seq, device, dtype)
            row = {"scheme": scheme, "seq": seq, **time_call(step, device, repeats=5)}
            if measure_memory:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    step()
                    torch.cuda.synchronize()
                    row["peak_extra_bytes"] = torch.cuda.max_memory_allocated() - base
                else:
                    row["peak_extra_bytes"] = _cpu_peak_extra_bytes(
                        scheme, seq, str(dtype).removeprefix("torch.")
                    )
            rows.append(row)
            progress.update(1)
    by_len: dict[int, dict] = {}
    for row in rows:
        by_len.setdefault(row["seq"], {})[row["scheme"]] = row
    for group in by_len.values():
        nope = group["nope"]
        for row in group.values():
            row["time_vs_nope"] = row["median_ms"] / nope["median_ms"]
            if "peak_extra_bytes" in row:
                row["extra_bytes_vs_nope"] = row["peak_extra_bytes"] - nope["peak_extra_bytes"]
    return rows


# ----------------------------------------------------------------------------------------
# Part B: RoPE formulations vs a copy
# ----------------------------------------------------------------------------------------


def rope_rotate_half(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The Hugging Face formulation, re-typed: x·cat(c, c) + rotate_half(x)·cat(s, s)."""
    return x * torch.cat([cos, cos], -1) + rotate_half(x) * torch.cat([sin, sin], -1)


def _peers(x: Tensor, positions: Tensor) -> dict[str, Callable[[], Tensor]]:
    """Implementations from other packages, run from those packages when installed."""
    peers: dict[str, Callable[[], Tensor]] = {}
    try:  # Hugging Face transformers
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        cos, sin = rope_cos_sin(positions, x.shape[-1], dtype=x.dtype)
        cos, sin = torch.cat([cos, cos], -1)[None], torch.cat([sin, sin], -1)[None]
        peers["peer: transformers apply_rotary_pos_emb"] = lambda: apply_rotary_pos_emb(
            x, x, cos, sin
        )[0]
    except Exception:
        pass
    try:  # lucidrains' rotary-embedding-torch
        from rotary_embedding_torch import RotaryEmbedding as LucidRotary

        rotary = LucidRotary(dim=x.shape[-1]).to(x.device)
        peers["peer: rotary-embedding-torch"] = lambda: rotary.rotate_queries_or_keys(x)
    except Exception:
        pass
    return peers


def part_b(shape: tuple[int, ...], device, dtype, *, use_compile: bool, progress) -> dict:
    x = torch.randn(*shape, device=device, dtype=dtype)
    positions = torch.arange(shape[-2], device=device)
    cos, sin = rope_cos_sin(positions, shape[-1], dtype=dtype)
    out = torch.empty_like(x)
    bytes_moved = 2 * x.numel() * x.element_size()  # read x once, write the result once
    candidates: dict[str, Callable[[], object]] = {
        "copy (speed limit)": lambda: out.copy_(x),
        "apply_rope (default, half)": lambda: apply_rope(x, positions),
        "cached cos/sin, half": lambda: rope_cached(x, cos, sin),
        "rotate_half formula (HF, re-typed)": lambda: rope_rotate_half(x, cos, sin),
        "interleaved": lambda: apply_rope(x, positions, layout="interleaved"),
        "complex multiply (interleaved)": lambda: apply_rope_complex(x, positions),
    }
    if use_compile:
        try:
            compiled = torch.compile(rope_cached)
            compiled(x, cos, sin)  # compile once, outside the timing
            candidates["torch.compile(cached half)"] = lambda: compiled(x, cos, sin)
        except Exception as err:  # no compiler on this machine, etc.
            candidates[f"torch.compile unavailable: {type(err).__name__}"] = None
    candidates.update(_peers(x, positions))
    rows = {}
    for name, fn in candidates.items():
        progress.set_postfix_str(f"B: {name}")
        if fn is None:
            rows[name] = None
            continue
        t = time_call(fn, device, repeats=7)
        t["gb_per_s"] = bytes_moved / (t["median_ms"] / 1000) / 1e9
        rows[name] = t
        progress.update(1)
    copy = rows["copy (speed limit)"]["median_ms"]
    for row in rows.values():
        if row is not None:
            row["fraction_of_copy"] = copy / row["median_ms"]
    return {"shape": list(shape), "bytes_moved": bytes_moved, "rows": rows}


# ----------------------------------------------------------------------------------------
# Part C: ALiBi without an L×L bias
# ----------------------------------------------------------------------------------------


def alibi_blockwise(q: Tensor, k: Tensor, v: Tensor, slopes: Tensor, block: int = 256) -> Tensor:
    """Causal ALiBi attention computed one block of queries at a time: only a
    (heads, block, L) slice of the bias ever exists, built on the fly from the slopes."""
    seq = q.shape[-2]
    out = torch.empty_like(q)
    for start in range(0, seq, block):
        stop = min(start + block, seq)
        # bias for queries start … stop − 1 against keys 0 … stop − 1
        bias = bias_from_slopes(slopes.to(q), stop - start, stop)  # (heads, block, stop)
        out[..., start:stop, :] = F.scaled_dot_product_attention(
            q[..., start:stop, :], k[..., :stop, :], v[..., :stop, :], attn_mask=bias
        )
    return out


def _alibi_at(seq: int, device, dtype, progress, heads: int = 8, head_dim: int = 64) -> list[dict]:
    q, k, v = (torch.randn(1, heads, seq, head_dim, device=device, dtype=dtype) for _ in range(3))
    slopes = alibi_slopes(heads).to(device)
    full_bias = bias_from_slopes(slopes.to(dtype), seq, seq)  # (heads, seq, seq)
    variants = {
        "nope (causal SDPA)": (lambda: attention_sdpa(q, k, v), 0),
        "alibi, materialised bias": (
            lambda: attention_sdpa(q, k, v, bias=full_bias, causal=False),
            full_bias.numel() * full_bias.element_size(),
        ),
        "alibi, blockwise": (
            lambda: alibi_blockwise(q, k, v, slopes),
            heads * min(256, seq) * seq * q.element_size(),
        ),
    }
    rows = []
    with torch.no_grad():
        for name, (fn, bias_bytes) in variants.items():
            progress.set_postfix_str(f"C: {name} @ {seq}")
            rows.append(
                {
                    "variant": name,
                    "seq": seq,
                    "bias_bytes": bias_bytes,
                    **time_call(fn, device, repeats=3),
                }
            )
            progress.update(1)
    nope = rows[0]["median_ms"]
    for r in rows:
        r["time_vs_nope"] = r["median_ms"] / nope
    return rows


def part_c(lengths: list[int], device, dtype, *, progress) -> list[dict]:
    return [row for seq in lengths for row in _alibi_at(seq, device, dtype, progress)]


# ----------------------------------------------------------------------------------------
# Summary, plot, CLI
# ----------------------------------------------------------------------------------------


PEER_NAMES = ("rotate_half formula (HF, re-typed)",)


def summarise(a: list[dict], b: dict, c: list[dict]) -> dict:
    """The headline ratios the notebooks and README read."""
    rows = {k: v for k, v in b["rows"].items() if v is not None}
    ours = rows["apply_rope (default, half)"]
    peers = {k: v for k, v in rows.items() if k not in ("copy (speed limit)",)}
    fastest_name = min(peers, key=lambda k: peers[k]["median_ms"])
    # Peers: other projects' formulations (run from their packages when installed) and
    # Hugging Face's rotate_half formula re-typed here, for machines without transformers.
    peer_rows = {k: v for k, v in rows.items() if k in PEER_NAMES or k.startswith("peer: ")}
    fastest_peer = min(peer_rows, key=lambda k: peer_rows[k]["median_ms"])
    longest = max(r["seq"] for r in a)
    at_long = {r["scheme"]: r for r in a if r["seq"] == longest}
    c_long = {r["variant"]: r for r in c if r["seq"] == max(r["seq"] for r in c)}
    summary = {
        "rope_default_vs_fastest_formulation": peers[fastest_name]["median_ms"] / ours["median_ms"],
        "fastest_rope_formulation": fastest_name,
        "rope_default_vs_fastest_peer": peer_rows[fastest_peer]["median_ms"] / ours["median_ms"],
        "fastest_rope_peer": fastest_peer,
        "rope_default_fraction_of_copy": ours["fraction_of_copy"],
        "rope_best_fraction_of_copy": peers[fastest_name]["fraction_of_copy"],
        "layer_seq": longest,
        "layer_time_vs_nope": {s: r["time_vs_nope"] for s, r in at_long.items()},
        "alibi_blockwise_time_vs_nope": c_long["alibi, blockwise"]["time_vs_nope"],
        "alibi_materialised_time_vs_nope": c_long["alibi, materialised bias"]["time_vs_nope"],
        "alibi_materialised_bias_bytes": c_long["alibi, materialised bias"]["bias_bytes"],
        "alibi_blockwise_bias_bytes": c_long["alibi, blockwise"]["bias_bytes"],
    }
    if all("extra_bytes_vs_nope" in r for r in at_long.values()):
        summary["layer_extra_bytes_vs_nope"] = {
            s: r["extra_bytes_vs_nope"] for s, r in at_long.items()
        }
    return summary


def plot_bench(results: dict, path: str | Path | None = None):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    lengths = sorted({r["seq"] for r in results["part_a"]})
    for scheme in SCHEMES:
        ys = [
            next(
                r["time_vs_nope"]
                for r in results["part_a"]
                if r["scheme"] == scheme and r["seq"] == L
            )
            for L in lengths
        ]
        left.plot(lengths, ys, marker="o", label=scheme)
    left.set_xscale("log", base=2)
    left.set_xticks(lengths, [str(L) for L in lengths])
    left.set_xlabel("sequence length (tokens)")
    left.set_ylabel("time / NoPE time (fwd + bwd)")
    left.set_title("One attention layer, relative to NoPE")
    left.legend(fontsize=8)
    rows = {k: v for k, v in results["part_b"]["rows"].items() if v is not None}
    names = list(rows)
    right.barh(names, [rows[n]["gb_per_s"] for n in names])
    right.set_xlabel("achieved GB/s (read x + write result)")
    right.set_title(f"RoPE on {tuple(results['part_b']['shape'])}")
    right.invert_yaxis()
    fig.suptitle(f"{results['machine']}, {results['dtype']}", fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


QUICK = {"lengths": [64, 128], "rope_shape": (2, 4, 256, 64), "alibi_lengths": [128, 256]}
FULL_CPU = {
    "lengths": [256, 512, 1024, 2048, 4096],
    "rope_shape": (4, 16, 4096, 64),
    "alibi_lengths": [1024, 2048, 4096],
}
FULL_CUDA = {
    "lengths": [256, 1024, 4096, 16384],
    "rope_shape": (4, 16, 4096, 64),
    "alibi_lengths": [4096, 8192, 16384],
}


def run_bench(
    device: torch.device,
    dtype: torch.dtype,
    *,
    quick: bool = False,
    lengths: list[int] | None = None,
    use_compile: bool | None = None,
    measure_memory: bool = True,
    show_progress: bool = True,
) -> dict:
    from tqdm.auto import tqdm

    plan = dict(QUICK if quick else FULL_CUDA if device.type == "cuda" else FULL_CPU)
    if lengths:
        plan["lengths"] = lengths
    use_compile = (not quick) if use_compile is None else use_compile
    torch.manual_seed(0)
    start = time.time()
    total = len(plan["lengths"]) * len(SCHEMES) + 8 + 3 * len(plan["alibi_lengths"])
    with tqdm(total=total, desc="benchmark", unit="run", disable=not show_progress) as bar:
        a = part_a(plan["lengths"], device, dtype, measure_memory=measure_memory, progress=bar)
        b = part_b(plan["rope_shape"], device, dtype, use_compile=use_compile, progress=bar)
        c = part_c(plan["alibi_lengths"], device, dtype, progress=bar)
    return {
        "device": device.type,
        "machine": machine_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "quick": quick,
        "layer": LAYER,
        "part_a": a,
        "part_b": b,
        "part_c": c,
        "summary": summarise(a, b, c),
        "wall_time_s": round(time.time() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(
        prog="python -m posenc.experiments.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--lengths", type=int, nargs="+", help="Part A sequence lengths")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument(
        "--out",
        default=os.environ.get("POSENC_BENCH_OUT", "results"),
        help="output folder (default $POSENC_BENCH_OUT or results/)",
    )
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if args.lengths and min(args.lengths) < 1:
        parser.error("--lengths must be positive")
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else "cpu"
        if args.device == "auto"
        else args.device
    )
    dtype = getattr(torch, args.dtype)
    results = run_bench(
        device,
        dtype,
        quick=args.quick,
        lengths=args.lengths,
        use_compile=False if args.no_compile else None,
        measure_memory=not args.no_memory,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench_{file_label(device)}" + ("_quick" if args.quick else "")
    stem += "" if args.dtype == "float32" else f"_{args.dtype}"
    write_json(out / f"{stem}.json", results)
    plot_bench(results, out / f"{stem}.png")
    s = results["summary"]
    print(
        f"RoPE default vs fastest formulation ({s['fastest_rope_formulation']}): "
        f"{s['rope_default_vs_fastest_formulation']:.2f}×; "
        f"fraction of copy bandwidth {s['rope_default_fraction_of_copy']:.0%}"
    )
    print(
        f"ALiBi blockwise / NoPE time: {s['alibi_blockwise_time_vs_nope']:.2f}×; "
        f"materialised bias / NoPE: {s['alibi_materialised_time_vs_nope']:.2f}×"
    )
    print(f"wrote {out / stem}.json ({results['wall_time_s']} s on {results['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
