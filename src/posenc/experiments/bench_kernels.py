"""The variants the benchmark (:mod:`posenc.experiments.bench`) times, and their summaries.

Each builder returns zero-argument callables on ready-made inputs, so that timing and memory
measure the call alone. Other projects' code runs from their packages when installed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from posenc.alibi import alibi_slopes, bias_from_slopes
from posenc.attention import MultiHeadAttention
from posenc.experiments.model import ModelConfig, make_scheme
from posenc.fused_attention import attention_biased, attention_fused, flex_available
from posenc.rope import apply_rope, rope_cached, rope_cos_sin, rotate_half

# ----------------------------------------------------------------------------------------
# Part A: one attention layer per scheme
# ----------------------------------------------------------------------------------------

LAYER = {"d_model": 512, "n_heads": 8, "batch": 1}


def layer_step(scheme: str, seq: int, device, dtype) -> Callable[[], None]:
    """One forward + backward of posenc's causal attention layer with ``scheme``."""
    cfg = ModelConfig(
        scheme=scheme, d_model=LAYER["d_model"], n_heads=LAYER["n_heads"], max_len=seq
    )
    pos_scheme = make_scheme(cfg)
    layer = MultiHeadAttention(cfg.d_model, cfg.n_heads, pos_scheme).to(device, dtype)
    shape = (LAYER["batch"], seq, cfg.d_model)
    x = torch.randn(*shape, device=device, dtype=dtype, requires_grad=True)
    positions = torch.arange(seq, device=device)

    def step():
        h = pos_scheme.embed(x, positions)  # absolute schemes act here, the others inside
        layer(h, positions).sum().backward()

    return step


# ----------------------------------------------------------------------------------------
# Part B: RoPE forms and the two copies that bound them
# ----------------------------------------------------------------------------------------

COPY_LIMITS = {"copy_alloc": "copy into a fresh tensor", "copy_into": "copy into a buffer"}
ROPE_FORMS = (  # every name part B can time (peers and compile only when available)
    *COPY_LIMITS.values(),
    "posenc apply_rope (half)",
    "posenc rope_cached (half)",
    "posenc rope_cached out= (half)",
    "posenc apply_rope (interleaved)",
    "posenc complex out= (interleaved)",
    "Meta complex multiply (interleaved)",
    "transformers rotate_half (half)",
    "rotary-embedding-torch (interleaved)",
    "torch.compile of the rotate_half form (half)",
)


def rope_half_into(x: Tensor, cos: Tensor, sin: Tensor, out: Tensor) -> Tensor:
    """rope_cached written into ``out`` (same shape and dtype as x, float32): no allocation.
    out[:d/2] = x1·cos − x2·sin,  out[d/2:] = x2·cos + x1·sin."""
    half = x.shape[-1] // 2
    x1, x2, out1, out2 = x[..., :half], x[..., half:], out[..., :half], out[..., half:]
    torch.mul(x1, cos, out=out1).addcmul_(x2, sin, value=-1.0)
    torch.mul(x2, cos, out=out2).addcmul_(x1, sin)
    return out


def rope_complex_into(x: Tensor, rotation: Tensor, out: Tensor) -> Tensor:
    """Interleaved pairs as complex numbers times e^{i·mθ} (``rotation``: (seq, d/2) complex64),
    one multiply written straight into ``out``.  x: (..., seq, d) contiguous; out: the same
    shape in float32 (complex64 is two float32s)."""
    z = torch.view_as_complex(x.float().view(*x.shape[:-1], -1, 2))  # (..., seq, d/2)
    torch.mul(z, rotation, out=torch.view_as_complex(out.view(*out.shape[:-1], -1, 2)))
    return out


def meta_apply_rotary_emb(x: Tensor, freqs_cis: Tensor) -> Tensor:
    """Meta's Llama reference form (``apply_rotary_emb``), for one tensor: pairs as complex
    numbers, multiplied by freqs_cis = e^{i·mθ}, viewed back as real, cast to x's dtype."""
    x_ = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(x_ * freqs_cis).flatten(-2).type_as(x)


def _hf_rotate_half() -> tuple[Callable[[Tensor], Tensor], str]:
    try:  # the function Hugging Face's Llama applies to q and to k
        from transformers.models.llama.modeling_llama import rotate_half as hf

        return hf, "peer"
    except ImportError:
        return rotate_half, "posenc re-typing of a peer"


def _peer_variants(x: Tensor, cos: Tensor, sin: Tensor, rotation: Tensor) -> dict:
    hf_rotate_half, source = _hf_rotate_half()
    cos2, sin2 = torch.cat([cos, cos], -1), torch.cat([sin, sin], -1)  # HF's (seq, d) tables

    def hf_form():
        return x * cos2 + hf_rotate_half(x) * sin2  # apply_rotary_pos_emb, for one tensor

    peers = {
        "Meta complex multiply (interleaved)": (lambda: meta_apply_rotary_emb(x, rotation),
                                                "interleaved", "peer (re-typed: not a package)"),
        "transformers rotate_half (half)": (hf_form, "half", source),
    }  # fmt: skip
    try:  # lucidrains' rotary-embedding-torch, interleaved pairs by default
        from rotary_embedding_torch import RotaryEmbedding

        lucid = RotaryEmbedding(dim=x.shape[-1]).to(x.device)
        peers["rotary-embedding-torch (interleaved)"] = (
            lambda: lucid.rotate_queries_or_keys(x), "interleaved", "peer")  # fmt: skip
    except ImportError:
        pass
    return peers, hf_form


def rope_variants(shape, device, dtype, *, use_compile: bool) -> dict[str, dict]:
    """name -> {"fn", "layout", "source"} for every RoPE form and both copies."""
    x = torch.randn(*shape, device=device, dtype=dtype)
    positions = torch.arange(shape[-2], device=device)
    cos, sin = rope_cos_sin(positions, shape[-1])  # (seq, d/2) float32
    rotation = torch.complex(cos, sin)  # e^{i·mθ}, (seq, d/2)
    out, out32 = torch.empty_like(x), torch.empty_like(x, dtype=torch.float32)
    table = {
        COPY_LIMITS["copy_alloc"]: (lambda: x.clone(), "limit", "limit"),
        COPY_LIMITS["copy_into"]: (lambda: out.copy_(x), "limit", "limit"),
        "posenc apply_rope (half)": (lambda: apply_rope(x, positions), "half", "posenc"),
        "posenc rope_cached (half)": (lambda: rope_cached(x, cos, sin), "half", "posenc"),
        "posenc rope_cached out= (half)": (lambda: rope_half_into(x, cos, sin, out), "half",
                                           "posenc"),
        "posenc apply_rope (interleaved)": (
            lambda: apply_rope(x, positions, layout="interleaved"), "interleaved", "posenc"),
        "posenc complex out= (interleaved)": (lambda: rope_complex_into(x, rotation, out32),
                                              "interleaved", "posenc"),
    }  # fmt: skip
    peers, hf_form = _peer_variants(x, cos, sin, rotation)
    table.update(peers)
    if use_compile:
        compiled = torch.compile(hf_form)
        table["torch.compile of the rotate_half form (half)"] = (compiled, "half", "peer")
    return {n: {"fn": fn, "layout": lay, "source": src} for n, (fn, lay, src) in table.items()}


def _fastest(rows: dict, layout: str, source: str) -> str | None:
    names = [n for n, r in rows.items() if r["layout"] == layout and r["source"].startswith(source)]
    return min(names, key=lambda n: rows[n]["median_ms"]) if names else None


def rope_summary(rows: dict) -> dict:
    """Per layout: posenc's fastest form against the fastest peer, and against the copies."""
    summary = {}
    for layout in ("half", "interleaved"):
        ours, peer = _fastest(rows, layout, "posenc"), _fastest(rows, layout, "peer")
        best = rows[ours]
        summary[layout] = {
            "posenc_fastest": ours,
            "posenc_fraction_of_copy_alloc": best["fraction_of_copy_alloc"],
            "posenc_fraction_of_copy_into": best["fraction_of_copy_into"],
            "peer_fastest": peer,
            "posenc_speedup_vs_fastest_peer": rows[peer]["median_ms"] / best["median_ms"],
        }
    default = rows["posenc apply_rope (half)"]
    summary["default_fraction_of_copy_alloc"] = default["fraction_of_copy_alloc"]
    return summary


def describe_rope(summary: dict) -> str:
    return "\n".join(
        f"RoPE, {layout}: {s['posenc_fastest']} is {s['posenc_speedup_vs_fastest_peer']:.2f}× "
        f"as fast as {s['peer_fastest']}; {s['posenc_fraction_of_copy_alloc']:.0%} of the "
        f"allocating copy's bandwidth, {s['posenc_fraction_of_copy_into']:.0%} of a copy "
        "into a buffer"
        for layout, s in summary.items()
        if isinstance(s, dict)
    )


# ----------------------------------------------------------------------------------------
# Part C: the attention kernel alone, with a bias materialised or computed inside
# ----------------------------------------------------------------------------------------

KERNEL = {"batch": 1, "heads": 8, "head_dim": 64, "t5_buckets": 32}
SDPA_NOPE, FLEX_NOPE = "SDPA, no bias", "flex, no bias"
KERNEL_VARIANTS = (
    SDPA_NOPE,
    "SDPA + stored (1, H, L, L) ALiBi mask",
    "SDPA + (1, H, L, L) ALiBi bias",
    "SDPA + (1, H, L, L) T5 bias",
    FLEX_NOPE,
    "flex, ALiBi score_mod",
    "flex, T5 score_mod",
)


def attention_variants(seq: int, device, dtype, *, use_flex: bool = True) -> dict:
    """name -> zero-argument call of causal attention at length ``seq`` (forward only).

    The "stored" row hands SDPA a mask built once ahead (H·L² floats, not counted in the call's
    memory); the other SDPA rows build their bias on every call, as a layer would; the flex rows
    compute it inside the kernel (compiled on their first call, once per shape)."""
    shape = (KERNEL["batch"], KERNEL["heads"], seq, KERNEL["head_dim"])
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=g).to(device, dtype) for _ in range(3))
    alibi = {"scheme": "alibi", "slopes": alibi_slopes(KERNEL["heads"]).to(device)}
    table = torch.randn(KERNEL["t5_buckets"], KERNEL["heads"], generator=g).to(device)
    t5 = {"scheme": "t5", "table": table}
    mask = bias_from_slopes(alibi["slopes"], seq, seq)[None].to(dtype)  # (1, H, L, L), −inf above
    fns = {
        SDPA_NOPE: lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        KERNEL_VARIANTS[1]: lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
        KERNEL_VARIANTS[2]: lambda: attention_biased(q, k, v, **alibi),
        KERNEL_VARIANTS[3]: lambda: attention_biased(q, k, v, **t5),
    }
    if use_flex and flex_available():
        fns[FLEX_NOPE] = lambda: attention_fused(q, k, v)
        fns[KERNEL_VARIANTS[5]] = lambda: attention_fused(q, k, v, **alibi)
        fns[KERNEL_VARIANTS[6]] = lambda: attention_fused(q, k, v, **t5)
    return fns


def kernel_summary(rows: list[dict]) -> dict:
    """At the longest length: each variant against SDPA with no bias (and flex with none)."""
    longest = max(r["seq"] for r in rows)
    at = {r["variant"]: r for r in rows if r["seq"] == longest}
    summary = {"seq": longest, "time_vs_sdpa_nope": {}, "time_vs_flex_nope": {}}
    for name, r in at.items():
        summary["time_vs_sdpa_nope"][name] = r["time_vs_sdpa_nope"]
        if "time_vs_flex_nope" in r:
            summary["time_vs_flex_nope"][name] = r["time_vs_flex_nope"]
        if name.startswith("flex"):
            summary.setdefault("first_call_s", {})[name] = r["first_call_ms"] / 1000
        if "peak_extra_bytes" in r:
            summary.setdefault("peak_extra_bytes", {})[name] = r["peak_extra_bytes"]
    return summary


def describe_kernels(summary: dict) -> str:
    lines = [f"Attention kernel at L = {summary['seq']} (forward), time / SDPA with no bias:"]
    for name, ratio in summary["time_vs_sdpa_nope"].items():
        vs_flex = summary["time_vs_flex_nope"].get(name)
        extra = f", {vs_flex:.2f}× flex with no bias" if vs_flex and name.startswith("flex") else ""
        memory = summary.get("peak_extra_bytes", {}).get(name)
        mib = "" if memory is None else f", +{memory / 2**20:,.0f} MiB"
        lines.append(f"  {name:34} {ratio:6.2f}×{extra}{mib}")
    return "\n".join(lines)
