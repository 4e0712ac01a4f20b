"""What each position scheme costs: time and memory, on CPU or GPU, like against like.

    python -m posenc.experiments.bench                       # CPU, float32, full (minutes)
    python -m posenc.experiments.bench --quick               # a smoke test: seconds, no figures
    python -m posenc.experiments.bench --device cuda --dtype bfloat16
    make bench / make bench-gpu

Part A: one causal multi-head attention layer (posenc's layer, projections included), forward
+ backward, for every scheme, at several lengths: time and extra peak memory vs NoPE.
Part B: RoPE on one (batch, heads, seq, head_dim) tensor: posenc's forms, other projects'
forms (run from their packages when installed), ``torch.compile``, and two speed limits measured
in the same run: a copy into a fresh tensor and a copy into a preallocated buffer.
Part C: the attention kernel alone (forward): SDPA with no bias, SDPA with a materialised
(1, H, L, L) ALiBi or T5 bias, and flex_attention computing the bias inside the kernel.

Timing: every variant of a part is warmed up, then the variants run in turn (A, B, C, A, B,
C, …) so that a slow spell of a shared machine hits them all alike; median and interquartile
range per variant. The first call (which compiles, for compiled variants) is reported apart.
Memory: the peak growth of one call after a warm-up, in a fresh process on the CPU (Linux's
resident high-water mark, reset before the call) and from the allocator's peak on CUDA.
Results: results/bench_<device>.json and .png.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from posenc.experiments import bench_kernels as kernels
from posenc.experiments.bench_kernels import attention_variants, rope_variants
from posenc.experiments.model import SCHEMES
from posenc.runtime import machine_name, write_json

# ----------------------------------------------------------------------------------------
# Timing: interleaved repeats, one device hook per device type
# ----------------------------------------------------------------------------------------

SYNC: dict[str, Callable[[], None]] = {
    "cpu": lambda: None,
    "cuda": lambda: torch.cuda.synchronize(),
}


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call, the device drained before and after (CUDA runs async)."""
    sync = SYNC[device.type]
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return (time.perf_counter() - start) * 1000


def _stats(times: list[float]) -> dict[str, float]:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_ms": statistics.median(times), "iqr_ms": q[2] - q[0], "repeats": len(times)}


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    device: torch.device,
    *,
    warmup: int = 1,
    repeats: int = 5,
) -> dict[str, dict[str, float]]:
    """Median and spread of each variant, timed in turn (A, B, …, A, B, …) after a warm-up.

    ``first_call_ms`` is the first call of each variant: for a compiled one, the compile (or
    the load from inductor's on-disk cache) plus one run.
    """
    first = {name: time_once(fn, device) for name, fn in fns.items()}
    for _ in range(warmup - 1):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(time_once(fn, device))
    return {name: {**_stats(times[name]), "first_call_ms": first[name]} for name in fns}


# ----------------------------------------------------------------------------------------
# Memory: peak growth of one warmed-up call
# ----------------------------------------------------------------------------------------


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


def cpu_peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Resident-memory peak of one call of ``fn`` above the memory in use before it (Linux).

    After a warm-up call, writing 5 to /proc/self/clear_refs resets the high-water mark
    (VmHWM) to the current resident size (VmRSS); the call's peak is then VmHWM − VmRSS.
    The caller sets MALLOC_MMAP_THRESHOLD_ so that freed blocks go back to the system and a
    warm-up cannot leave reusable memory behind.
    """
    fn()
    Path("/proc/self/clear_refs").write_text("5")
    before = _proc_status("VmRSS")
    fn()
    return _proc_status("VmHWM") - before


def cuda_peak_extra_bytes(fn: Callable[[], object]) -> int:
    """The CUDA allocator's peak during one call of ``fn``, above what was allocated before."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


MALLOC_MMAP_THRESHOLD = 64 * 1024  # bytes: every block this large is mmap'ed and unmapped on free


def peak_extra_bytes(part: str, name: str, seq: int, device: torch.device, dtype) -> int:
    """Peak extra memory of one call of variant ``name`` of ``part`` ("layer" or "kernel").

    CPU: in a fresh process, so that nothing measured before counts. CUDA: in this process.
    """
    if device.type == "cuda":
        return cuda_peak_extra_bytes(BUILDERS[part](name, seq, device, dtype))
    dtype_name = str(dtype).removeprefix("torch.")
    code = (
        "import torch\n"
        "from posenc.experiments.bench import BUILDERS, cpu_peak_extra_bytes\n"
        f"fn = BUILDERS[{part!r}]({name!r}, {seq}, torch.device('cpu'), torch.{dtype_name})\n"
        "print(cpu_peak_extra_bytes(fn))\n"
    )
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MALLOC_MMAP_THRESHOLD)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return int(out.stdout.strip().splitlines()[-1])


def file_label(device: torch.device) -> str:
    """A file-name-safe device name: 'cpu' or e.g. 'nvidia-h100-80gb-hbm3'."""
    if device.type == "cpu":
        return "cpu"
    name = torch.cuda.get_device_name(device).lower()
    return "".join(c if c.isalnum() else "-" for c in name).strip("-")


# ----------------------------------------------------------------------------------------
# The three parts
# ----------------------------------------------------------------------------------------

BUILDERS: dict[str, Callable] = {
    "layer": kernels.layer_step,
    "kernel": lambda name, seq, device, dtype: attention_variants(seq, device, dtype)[name],
}


def _ratios(rows: list[dict], baseline: str, label: str, key: str = "variant") -> None:
    """Add time_vs_<label> to each row: its time over the baseline's at the same length."""
    base = {r["seq"]: r["median_ms"] for r in rows if r[key] == baseline}
    for r in rows:
        r[f"time_vs_{label}"] = r["median_ms"] / base[r["seq"]]


def part_a(plan: dict, device, dtype, *, measure_memory: bool, progress) -> list[dict]:
    """One attention layer per scheme, forward + backward; memory at the longest length."""
    rows = []
    for seq in plan["lengths"]:
        progress.set_postfix_str(f"A: layer @ {seq}")
        steps = {s: kernels.layer_step(s, seq, device, dtype) for s in SCHEMES}
        timed = time_interleaved(steps, device, repeats=plan["repeats"])
        rows += [{"scheme": s, "seq": seq, **t} for s, t in timed.items()]
        progress.update(len(steps))
    _ratios(rows, "nope", "nope", key="scheme")
    if measure_memory:
        longest = [r for r in rows if r["seq"] == max(plan["lengths"])]
        for r in longest:
            progress.set_postfix_str(f"A: memory of {r['scheme']}")
            r["peak_extra_bytes"] = peak_extra_bytes("layer", r["scheme"], r["seq"], device, dtype)
        for r in longest:
            r["extra_bytes_vs_nope"] = r["peak_extra_bytes"] - longest[0]["peak_extra_bytes"]
    return rows


def part_b(plan: dict, device, dtype, *, use_compile: bool, progress) -> dict:
    """RoPE forms against the two copies, on one large tensor."""
    shape = plan["rope_shape"]
    progress.set_postfix_str("B: RoPE (compiling)" if use_compile else "B: RoPE")
    variants = rope_variants(shape, device, dtype, use_compile=use_compile)
    timed = time_interleaved(
        {n: v["fn"] for n, v in variants.items()}, device, repeats=plan["rope_repeats"]
    )
    progress.update(len(variants))
    element = torch.empty((), dtype=dtype).element_size()
    bytes_moved = 2 * shape[0] * shape[1] * shape[2] * shape[3] * element  # read x, write out
    limits = {k: timed[v]["median_ms"] for k, v in kernels.COPY_LIMITS.items()}
    rows = {}
    for name, row in timed.items():
        row["layout"] = variants[name]["layout"]
        row["source"] = variants[name]["source"]
        row["gb_per_s"] = bytes_moved / (row["median_ms"] / 1000) / 1e9
        for limit, ms in limits.items():
            row[f"fraction_of_{limit}"] = ms / row["median_ms"]
        rows[name] = row
    return {"shape": list(shape), "bytes_moved": bytes_moved, "rows": rows}


def part_c(plan: dict, device, dtype, *, use_compile: bool, measure_memory: bool, progress):
    """The attention kernel alone, forward, with and without a bias, fused or not."""
    rows = []
    for seq in plan["kernel_lengths"]:
        progress.set_postfix_str(f"C: kernels @ {seq}")
        fns = attention_variants(seq, device, dtype, use_flex=use_compile)
        with torch.no_grad():
            timed = time_interleaved(fns, device, repeats=plan["repeats"])
        rows += [{"variant": n, "seq": seq, **t} for n, t in timed.items()]
        progress.update(len(fns))
    _ratios(rows, kernels.SDPA_NOPE, "sdpa_nope")
    if use_compile and any(r["variant"] == kernels.FLEX_NOPE for r in rows):
        _ratios(rows, kernels.FLEX_NOPE, "flex_nope")
    if measure_memory:
        for r in (r for r in rows if r["seq"] == max(plan["kernel_lengths"])):
            progress.set_postfix_str(f"C: memory of {r['variant']}")
            r["peak_extra_bytes"] = peak_extra_bytes(
                "kernel", r["variant"], r["seq"], device, dtype
            )
    return rows


# ----------------------------------------------------------------------------------------
# Plans, summary, plot, CLI
# ----------------------------------------------------------------------------------------

QUICK = {  # a smoke test: every code path, sizes far too small for timings to mean anything
    "lengths": [64, 128],
    "rope_shape": (1, 4, 256, 64),
    "kernel_lengths": [128],
    "repeats": 3,
    "rope_repeats": 3,
}
FULL_CPU = {
    "lengths": [256, 1024, 4096],
    "rope_shape": (4, 16, 4096, 64),  # 64 MiB in float32: far past every cache
    "kernel_lengths": [2048, 4096],
    "repeats": 5,
    "rope_repeats": 9,
}
FULL_CUDA = {
    "lengths": [256, 1024, 4096, 16384],
    "rope_shape": (4, 32, 8192, 128),  # 256 MiB in bfloat16: far past the L2 cache
    "kernel_lengths": [4096, 8192, 16384],
    "repeats": 10,
    "rope_repeats": 20,
}
SHARED_MACHINE_NOTE = (
    "Timings are medians of interleaved repeats; each ratio is against a baseline measured in "
    "the same run, which keeps ratios usable when absolute times are noisy."
)


def summarise(a: list[dict], b: dict, c: list[dict]) -> dict:
    """The headline figures the notebooks and README read."""
    longest = max(r["seq"] for r in a)
    at_long = {r["scheme"]: r for r in a if r["seq"] == longest}
    summary = {
        "layer_seq": longest,
        "layer_time_vs_nope": {s: r["time_vs_nope"] for s, r in at_long.items()},
        "rope": kernels.rope_summary(b["rows"]),
        "kernel": kernels.kernel_summary(c),
    }
    if all("extra_bytes_vs_nope" in r for r in at_long.values()):
        summary["layer_extra_bytes_vs_nope"] = {
            s: r["extra_bytes_vs_nope"] for s, r in at_long.items()
        }
    return summary


def plot_bench(results: dict, path: str | Path | None = None):
    """Left: kernel time vs SDPA NoPE by length; right: RoPE forms' share of copy bandwidth."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
    rows = results["part_c"]
    lengths = sorted({r["seq"] for r in rows})
    for name in dict.fromkeys(r["variant"] for r in rows):
        ys = [next(r["time_vs_sdpa_nope"] for r in rows if r["variant"] == name and r["seq"] == L)
              for L in lengths]  # fmt: skip
        left.plot(lengths, ys, marker="o", label=name)
    left.set_xscale("log", base=2)
    left.set_xticks(lengths, [str(L) for L in lengths])
    left.set_xlabel("sequence length (tokens)")
    left.set_ylabel("time / SDPA with no bias (forward)")
    left.set_title("Attention kernel, causal, 8 heads of 64")
    left.legend(fontsize=7)
    rope = sorted(results["part_b"]["rows"].items(), key=lambda kv: kv[1]["median_ms"])
    right.barh([n for n, _ in rope], [100 * r["fraction_of_copy_alloc"] for _, r in rope])
    right.axvline(100, color="grey", lw=0.8)
    right.set_xlabel("% of the bandwidth of a copy into a fresh tensor")
    right.set_title(f"RoPE on {tuple(results['part_b']['shape'])}")
    right.invert_yaxis()
    right.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"{results['machine']}, {results['dtype']}", fontsize=9)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def run_bench(
    device: torch.device,
    dtype: torch.dtype,
    *,
    quick: bool = False,
    lengths: list[int] | None = None,
    use_compile: bool | None = None,
    measure_memory: bool = True,
    show_progress: bool = True,
    note: str = "",
) -> dict:
    """Run parts A, B and C; return everything measured, with a summary."""
    from tqdm.auto import tqdm

    plan = dict(QUICK if quick else FULL_CUDA if device.type == "cuda" else FULL_CPU)
    plan["lengths"] = lengths or plan["lengths"]
    use_compile = (not quick) if use_compile is None else use_compile
    torch.manual_seed(0)
    start = time.time()
    total = (  # one tick per variant timed
        len(plan["lengths"]) * len(SCHEMES)
        + len(kernels.ROPE_FORMS)
        + len(plan["kernel_lengths"]) * len(kernels.KERNEL_VARIANTS)
    )
    with tqdm(total=total, desc="benchmark", unit="variant", disable=not show_progress) as bar:
        a = part_a(plan, device, dtype, measure_memory=measure_memory, progress=bar)
        b = part_b(plan, device, dtype, use_compile=use_compile, progress=bar)
        c = part_c(plan, device, dtype, use_compile=use_compile,
                   measure_memory=measure_memory, progress=bar)  # fmt: skip
    return {
        "device": device.type,
        "machine": machine_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "quick": quick,
        "note": " ".join(x for x in (SHARED_MACHINE_NOTE, note) if x),
        "plan": {k: list(v) if isinstance(v, tuple) else v for k, v in plan.items()},
        "layer": kernels.LAYER,
        "part_a": a,
        "part_b": b,
        "part_c": c,
        "summary": summarise(a, b, c),
        "wall_time_s": round(time.time() - start, 1),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m posenc.experiments.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--lengths", type=int, nargs="+", help="Part A sequence lengths")
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny sizes, seconds")
    parser.add_argument("--no-compile", action="store_true", help="skip compiled variants")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--note", default="", help="a note stored in the JSON")
    parser.add_argument(
        "--out",
        default=os.environ.get("POSENC_BENCH_OUT", "results"),
        help="output folder (default $POSENC_BENCH_OUT or results/)",
    )
    return parser


def _print_summary(results: dict) -> None:
    if results["quick"]:
        print("--quick is a smoke test: sizes too small for timings or ratios to mean anything.")
        return
    rope, kernel = results["summary"]["rope"], results["summary"]["kernel"]
    print(kernels.describe_rope(rope))
    print(kernels.describe_kernels(kernel))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if args.lengths and min(args.lengths) < 1:
        parser.error("--lengths must be positive")
    auto = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(auto if args.device == "auto" else args.device)
    results = run_bench(
        device,
        getattr(torch, args.dtype),
        quick=args.quick,
        lengths=args.lengths,
        use_compile=False if args.no_compile else None,
        measure_memory=not args.no_memory,
        note=args.note,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench_{file_label(device)}" + ("_quick" if args.quick else "")
    stem += "" if args.dtype == "float32" else f"_{args.dtype}"
    write_json(out / f"{stem}.json", results)
    plot_bench(results, out / f"{stem}.png")
    _print_summary(results)
    print(f"wrote {out / stem}.json ({results['wall_time_s']} s on {results['machine']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
