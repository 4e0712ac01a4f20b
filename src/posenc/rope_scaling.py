"""Stretching RoPE past its training length: PI, NTK-aware, dynamic NTK, YaRN, Llama 3.

Each method changes the RoPE frequencies θ_i = base^(−2i/d) (and YaRN also the attention
temperature). The dicts are Hugging Face transformers' own, read as they are: the old style
``rope_scaling`` (with ``"type"`` or ``"rope_type"``, the base passed as ``base``) or the new
``rope_parameters`` (transformers 5, with ``"rope_theta"`` inside). ``ROPE_TYPES`` maps each
``rope_type`` to the function that builds its frequencies and the keys it reads, as HF's
``ROPE_INIT_FUNCTIONS`` does:

* ``"default"``: plain RoPE (also what a missing ``rope_type`` means).
* ``"linear"``, ``factor`` f: Position Interpolation (Chen et al., 2023): θ_i / f.
* ``"dynamic"``, ``factor`` f: dynamic NTK (emozilla, 2023). For a current length s above
  the length L the model was trained at, base' = base · (f·s/L − (f − 1))^(d/(d−2)); plain
  RoPE for s ≤ L. As in HF, L is ``max_position_embeddings`` (a model config field: pass it
  in the dict or as an argument); the course also reads ``original_max_position_embeddings``
  when ``max_position_embeddings`` is absent. θ follows each input's own length
  s = max(positions) + 1; HF keeps the θ of the longest input seen since the last one within
  L, which is the same on a growing sequence (KV-cache decoding).
* ``"yarn"``, ``factor`` f, ``original_max_position_embeddings`` L: YaRN (Peng et al., 2023):
  a per-pair ramp between interpolation (slow pairs) and extrapolation (fast pairs), bounded by
  ``beta_fast`` / ``beta_slow`` turns (None: 32 / 1), floored/ceiled unless ``truncate`` is
  False; and an attention factor 0.1·ln f + 1 that multiplies cos and sin, or
  (0.1·mscale·ln f + 1) / (0.1·mscale_all_dim·ln f + 1) when both ``mscale`` and
  ``mscale_all_dim`` are set (DeepSeek), or ``attention_factor`` when given. A ``factor`` of
  None means max_position_embeddings / L.
* ``"llama3"``, ``factor``, ``low_freq_factor``, ``high_freq_factor``,
  ``original_max_position_embeddings``: Llama 3.1's wavelength bands.
* ``"ntk"``, ``factor`` f (the course's name, not a Hugging Face type): the static NTK-aware
  base change (bloc97, 2023), base' = base · f^(d/(d−2)).

A key that no rope type reads is an error; a key that another type reads (``low_freq_factor``
in a ``"linear"`` dict) changes nothing, as in HF. ``"partial_rotary_factor"`` sizes the
rotary dim in :func:`rotary_embedding` / :func:`rotary_from_config`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

import torch
from torch import Tensor

from posenc.rope import (
    Frequencies,
    Layout,
    RotaryEmbedding,
    check_dim,
    check_int,
    check_real,
    rope_frequencies,
)

# YaRN's ramp bounds, in turns over the original context: pairs turning more than β = 32
# times keep their frequency, fewer than α = 1 times are interpolated (Peng et al., 2023,
# "YaRN", section 3.2: "we set α = 1 and β = 32 for Llama models"; the defaults of Hugging
# Face's _compute_yarn_parameters, beta_fast = 32 and beta_slow = 1).
YARN_BETA_FAST = 32.0
YARN_BETA_SLOW = 1.0
# YaRN's temperature: √(1/t) = 0.1·ln(s) + 1 (Peng et al., 2023, eq. 22).
YARN_MSCALE_SLOPE = 0.1


class RopeScaling(TypedDict, total=False):
    """A Hugging Face ``rope_scaling`` / ``rope_parameters`` dict (every key optional here;
    :data:`ROPE_TYPES` says which each type requires)."""

    rope_type: str
    type: str  # the old name of rope_type
    rope_theta: float
    partial_rotary_factor: float
    max_position_embeddings: int  # a model config field; dynamic NTK's L
    factor: float | None
    original_max_position_embeddings: int
    low_freq_factor: float
    high_freq_factor: float
    beta_fast: float | None
    beta_slow: float | None
    attention_factor: float | None
    mscale: float | None
    mscale_all_dim: float | None
    truncate: bool


# --- the methods, one function each ----------------------------------------------------


def _check_factor(factor) -> float:
    return check_real("factor", factor, above=0.0)


def ntk_scaled_base(base: float, factor: float, dim: int) -> float:
    """base · factor^(d/(d−2)): the base at which the slowest pair turns ``factor`` times slower
    while the fastest pair (i = 0) is untouched."""
    base, factor, dim = check_real("base", base, above=1.0), _check_factor(factor), check_dim(dim)
    if dim == 2:
        raise ValueError("dim must be >= 4 for NTK scaling (the exponent is d/(d−2))")
    return base * factor ** (dim / (dim - 2))


def yarn_correction_range(
    dim: int,
    base: float,
    original_len: int,
    beta_fast: float = YARN_BETA_FAST,
    beta_slow: float = YARN_BETA_SLOW,
    *,
    truncate: bool = True,
) -> tuple[float, float]:
    """Pair indices (low, high) of YaRN's ramp. Pair i completes L·θ_i / 2π turns over the
    original length L; pairs turning more than beta_fast times are kept (extrapolated),
    fewer than beta_slow times are interpolated, the ones between are blended. ``truncate``
    (HF's default) floors low and ceils high to whole pairs."""
    dim, base = check_dim(dim), check_real("base", base, above=1.0)
    original_len = check_int("original_max_position_embeddings", original_len, minimum=1)
    beta_fast = check_real("beta_fast", beta_fast, above=0.0)
    beta_slow = check_real("beta_slow", beta_slow, above=0.0)
    if beta_fast < beta_slow:
        raise ValueError(f"beta_fast must be >= beta_slow, got {beta_fast:g} < {beta_slow:g}")

    def pair_with_turns(turns: float) -> float:  # i(r) = d·ln(L / (2π r)) / (2 ln base)
        return dim * math.log(original_len / (turns * 2 * math.pi)) / (2 * math.log(base))

    low, high = pair_with_turns(beta_fast), pair_with_turns(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, dim - 1)


def yarn_ramp(
    dim: int,
    base: float,
    original_len: int,
    beta_fast: float = YARN_BETA_FAST,
    beta_slow: float = YARN_BETA_SLOW,
    *,
    truncate: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """γ_i in [0, 1] per pair: 0 = keep the original frequency, 1 = divide it by the factor."""
    low, high = yarn_correction_range(
        dim, base, original_len, beta_fast, beta_slow, truncate=truncate
    )
    high = high + 0.001 if low == high else high  # HF's guard against a zero-width ramp
    return ((torch.arange(dim // 2, dtype=dtype) - low) / (high - low)).clamp(0, 1)


def yarn_attention_factor(
    factor: float, mscale: float | None = None, mscale_all_dim: float | None = None
) -> float:
    """0.1 · ln(factor) + 1 (1 for factor ≤ 1): YaRN's temperature on the attention logits,
    applied by scaling cos and sin (so q·k scales by its square). With both ``mscale`` and
    ``mscale_all_dim`` set (DeepSeek's configs), the ratio
    (0.1·mscale·ln f + 1) / (0.1·mscale_all_dim·ln f + 1), as Hugging Face computes it."""
    factor = _check_factor(factor)

    def get_mscale(scale: float) -> float:
        return 1.0 if factor <= 1 else YARN_MSCALE_SLOPE * scale * math.log(factor) + 1.0

    if mscale and mscale_all_dim:  # HF uses the pair only when both are set and non-zero
        mscale = check_real("mscale", mscale, above=0.0)
        mscale_all_dim = check_real("mscale_all_dim", mscale_all_dim, above=0.0)
        return get_mscale(mscale) / get_mscale(mscale_all_dim)
    return get_mscale(1.0)


def linear_scaled_frequencies(
    dim: int, base: float = 10000.0, factor: float = 1.0, *, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Position Interpolation: θ_i / factor (position m is read as m / factor)."""
    factor = _check_factor(factor)
    return (rope_frequencies(dim, base, dtype=torch.float64) / factor).to(dtype)


def dynamic_ntk_base(
    base: float, factor: float, dim: int, seq_len: int, original_len: int
) -> float:
    """Dynamic NTK: the base for the current length; unchanged while seq_len ≤ original_len,
    then base · (factor · seq_len / original_len − (factor − 1))^(d/(d−2))."""
    seq_len = check_int("seq_len", seq_len, minimum=0)
    original_len = check_int("original_len", original_len, minimum=1)
    if seq_len <= original_len:
        return check_real("base", base, above=1.0)
    return ntk_scaled_base(base, factor * seq_len / original_len - (factor - 1), dim)


def yarn_frequencies(
    dim: int,
    base: float = 10000.0,
    factor: float = 1.0,
    original_max_position_embeddings: int = 2048,
    beta_fast: float = YARN_BETA_FAST,
    beta_slow: float = YARN_BETA_SLOW,
    *,
    truncate: bool = True,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, float]:
    """YaRN: θ_i' = θ_i · (1 − γ_i) + (θ_i / factor) · γ_i with the ramp γ of
    :func:`yarn_ramp` (0 for fast pairs, 1 for slow ones), and the attention factor
    0.1 · ln(factor) + 1."""
    factor = _check_factor(factor)
    theta = rope_frequencies(dim, base, dtype=torch.float64)
    ramp = yarn_ramp(
        dim, base, original_max_position_embeddings, beta_fast, beta_slow, truncate=truncate
    ).double()
    scaled = theta * (1 - ramp) + theta / factor * ramp
    return scaled.to(dtype), yarn_attention_factor(factor)


def llama3_frequencies(
    dim: int,
    base: float = 500000.0,
    factor: float = 8.0,
    low_freq_factor: float = 1.0,
    high_freq_factor: float = 4.0,
    original_max_position_embeddings: int = 8192,
    *,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Llama 3.1: pairs whose wavelength 2π/θ exceeds L/low_freq_factor are interpolated by
    the factor, those shorter than L/high_freq_factor are kept, and the band between is
    blended with s = (L/wavelength − low) / (high − low):  θ' = (1 − s)·θ/factor + s·θ."""
    factor = _check_factor(factor)
    low = check_real("low_freq_factor", low_freq_factor, above=0.0)
    high = check_real("high_freq_factor", high_freq_factor, above=0.0)
    if not high > low:
        raise ValueError(f"high_freq_factor must be > low_freq_factor, got {high:g} <= {low:g}")
    L = check_int("original_max_position_embeddings", original_max_position_embeddings, minimum=1)
    theta = rope_frequencies(dim, base, dtype=torch.float64)
    wavelength = 2 * math.pi / theta
    smooth = ((L / wavelength - low) / (high - low)).clamp(0, 1)  # 0: interpolate, 1: keep
    return (theta / factor * (1 - smooth) + theta * smooth).to(dtype)


# --- the dispatch table ------------------------------------------------------------------


def _default(dim: int, base: float, p: dict) -> tuple[Frequencies, float]:
    return rope_frequencies(dim, base, dtype=torch.float64), 1.0


def _linear(dim: int, base: float, p: dict) -> tuple[Frequencies, float]:
    return linear_scaled_frequencies(dim, base, p["factor"], dtype=torch.float64), 1.0


def _ntk(dim: int, base: float, p: dict) -> tuple[Frequencies, float]:
    return rope_frequencies(dim, ntk_scaled_base(base, p["factor"], dim), dtype=torch.float64), 1.0


def _dynamic(dim: int, base: float, p: dict) -> tuple[Frequencies, float]:
    """θ as a function of the current length s = max(positions) + 1, as HF recomputes it."""
    factor, name = p["factor"], "max_position_embeddings"
    if name not in p:  # the course's dicts name the trained length this way
        name = "original_max_position_embeddings"
    if name not in p:
        raise ValueError(
            "rope_type 'dynamic' needs max_position_embeddings (the trained length, a model "
            "config field): pass it in the dict or as max_position_embeddings="
        )
    trained = check_int(name, p[name], minimum=1)
    dynamic_ntk_base(base, factor, dim, trained + 1, trained)  # validates factor and dim now

    def theta(seq_len: int) -> Tensor:
        new_base = dynamic_ntk_base(base, factor, dim, seq_len, trained)
        return rope_frequencies(dim, new_base, dtype=torch.float64)

    return theta, 1.0


def _yarn(dim: int, base: float, p: dict) -> tuple[Frequencies, float]:
    original = check_int("original_max_position_embeddings", p["original_max_position_embeddings"])
    factor = p["factor"]
    if factor is None:  # HF: the ratio of the new to the original context
        if "max_position_embeddings" not in p:
            raise ValueError("yarn factor None needs max_position_embeddings (factor = it / L)")
        factor = check_int("max_position_embeddings", p["max_position_embeddings"]) / original
    truncate = p.get("truncate", True)
    if not isinstance(truncate, bool):
        raise TypeError(f"truncate must be a bool, got {truncate!r}")
    beta_fast = YARN_BETA_FAST if p.get("beta_fast") is None else p["beta_fast"]
    beta_slow = YARN_BETA_SLOW if p.get("beta_slow") is None else p["beta_slow"]
    theta, _ = yarn_frequencies(
        dim, base, factor, original, beta_fast, beta_slow, truncate=truncate, dtype=torch.float64
    )
    attention = p.get("attention_factor")
    if attention is None:
        attention = yarn_attention_factor(factor, p.get("mscale"), p.get("mscale_all_dim"))
    return theta, check_real("attention_factor", attention, above=0.0)


def _llama3(dim: int, base: float, p: dict) -> tuple[Frequencies, float]:
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    return llama3_frequencies(dim, base, *(p[k] for k in keys), dtype=torch.float64), 1.0


@dataclass(frozen=True)
class RopeType:
    """One entry of :data:`ROPE_TYPES`: how to build θ and the attention factor, which keys
    must be present and which may be, and whether Hugging Face knows the type."""

    init: Callable[[int, float, dict], tuple[Frequencies, float]]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    huggingface: bool = True


_YARN_OPTIONAL = ("attention_factor", "beta_fast", "beta_slow", "mscale", "mscale_all_dim")
_LLAMA3_KEYS = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")

ROPE_TYPES: dict[str, RopeType] = {
    "default": RopeType(_default),
    "linear": RopeType(_linear, ("factor",)),
    "dynamic": RopeType(_dynamic, ("factor",), ("original_max_position_embeddings",)),
    "yarn": RopeType(
        _yarn, ("factor", "original_max_position_embeddings"), (*_YARN_OPTIONAL, "truncate")
    ),
    "llama3": RopeType(_llama3, _LLAMA3_KEYS),
    "ntk": RopeType(_ntk, ("factor",), huggingface=False),  # the course's static NTK-aware
}
# Keys any dict may carry: the type, the base, the rotary share and the model's length.
COMMON_KEYS = (
    "rope_type",
    "type",
    "rope_theta",
    "partial_rotary_factor",
    "max_position_embeddings",
)
KNOWN_KEYS = frozenset(COMMON_KEYS).union(*(t.required + t.optional for t in ROPE_TYPES.values()))


def _rope_type(p: Mapping) -> str:
    names = {p[k] for k in ("rope_type", "type") if k in p}
    if len(names) > 1:
        raise ValueError(f"scaling['type'] and scaling['rope_type'] disagree: {sorted(names)}")
    rope_type = names.pop() if names else "default"  # HF: no type means plain RoPE
    if rope_type not in ROPE_TYPES:
        raise ValueError(
            f"scaling['rope_type'] must be one of {sorted(ROPE_TYPES)} (posenc implements these; "
            f"'ntk' is the course's own), got {rope_type!r}"
        )
    return rope_type


def _merge(p: dict, key: str, value, default=None):
    """One value for ``key`` from the dict and an argument; both given and different: error."""
    if value is not None and p.get(key) is not None and p[key] != value:
        raise ValueError(f"{key} is {value!r} as an argument but {p[key]!r} in the dict")
    return p[key] if p.get(key) is not None else (default if value is None else value)


def resolve_scaling(
    scaling: RopeScaling | Mapping[str, Any] | None,
    base: float | None = None,
    *,
    max_position_embeddings: int | None = None,
) -> tuple[str, dict, float]:
    """Validate a config dict: (rope_type, the parameters with HF's defaults filled, base)."""
    if scaling is not None and not isinstance(scaling, Mapping):
        raise TypeError(
            f"scaling must be a dict (HF rope_scaling/rope_parameters) or None, got "
            f"{type(scaling).__name__}"
        )
    p = dict(scaling or {})
    rope_type = _rope_type(p)
    unknown = sorted(set(p) - KNOWN_KEYS)
    if unknown:
        entry = ROPE_TYPES[rope_type]
        raise ValueError(
            f"scaling has keys no rope type reads: {unknown}; {rope_type!r} reads "
            f"{sorted(entry.required + entry.optional)} (and {list(COMMON_KEYS)})"
        )
    base = check_real("base (rope_theta)", _merge(p, "rope_theta", base, 10000.0), above=1.0)
    length = _merge(p, "max_position_embeddings", max_position_embeddings)
    if length is not None:
        p["max_position_embeddings"] = check_int("max_position_embeddings", length, minimum=1)
        if rope_type in ("yarn", "llama3"):  # HF: the original length defaults to the model's
            p.setdefault("original_max_position_embeddings", length)
    missing = [k for k in ROPE_TYPES[rope_type].required if k not in p]
    if missing:
        raise ValueError(f"scaling{missing} is required for rope_type {rope_type!r}")
    if p.get("factor") is not None and not check_real("factor", p["factor"]) >= 1:
        raise ValueError(f"scaling['factor'] must be >= 1 (a stretch), got {p['factor']!r}")
    return rope_type, p, base


def rope_init(
    dim: int,
    scaling: RopeScaling | Mapping[str, Any] | None = None,
    base: float | None = None,
    *,
    max_position_embeddings: int | None = None,
) -> tuple[Frequencies, float]:
    """θ for a rotary dim ``dim`` (a float64 (dim/2,) tensor, or seq_len -> θ for "dynamic")
    and the attention factor, from a Hugging Face dict; what :class:`RotaryEmbedding` takes."""
    rope_type, p, base = resolve_scaling(
        scaling, base, max_position_embeddings=max_position_embeddings
    )
    return ROPE_TYPES[rope_type].init(check_dim(dim), base, p)


def rope_scaled_frequencies(
    dim: int,
    base: float | None = None,
    scaling: RopeScaling | Mapping[str, Any] | None = None,
    *,
    seq_len: int | None = None,
    max_position_embeddings: int | None = None,
) -> tuple[Tensor, float]:
    """Inverse frequencies (dim // 2,) float32 and attention factor for a ``scaling`` dict
    (or None). Dynamic scaling is evaluated at ``seq_len`` (None: plain θ, as HF at init)."""
    theta, attention = rope_init(
        dim, scaling, base, max_position_embeddings=max_position_embeddings
    )
    if callable(theta) and not isinstance(theta, Tensor):
        theta = theta(0 if seq_len is None else check_int("seq_len", seq_len))
    return theta.float(), attention


def rotary_embedding(
    head_dim: int,
    scaling: RopeScaling | Mapping[str, Any] | None = None,
    base: float | None = None,
    *,
    layout: Layout = "half",
    rotary_dim: int | None = None,
    max_position_embeddings: int | None = None,
) -> RotaryEmbedding:
    """A :class:`RotaryEmbedding` for a HF dict; ``partial_rotary_factor`` in it (or
    ``rotary_dim``) rotates only the first int(head_dim · factor) features, as HF does."""
    head_dim = check_dim(head_dim, "head_dim")
    share = (scaling or {}).get("partial_rotary_factor")
    if share is not None:
        share = check_real("partial_rotary_factor", share, above=0.0)
        if share > 1:
            raise ValueError(f"partial_rotary_factor must be in (0, 1], got {share!r}")
        from_share = int(head_dim * share)
        if rotary_dim is not None and rotary_dim != from_share:
            raise ValueError(f"rotary_dim {rotary_dim} != int(head_dim · {share}) {from_share}")
        rotary_dim = from_share
    rotary_dim = head_dim if rotary_dim is None else check_dim(rotary_dim, "rotary_dim")
    theta, attention = rope_init(
        rotary_dim, scaling, base, max_position_embeddings=max_position_embeddings
    )
    return RotaryEmbedding(
        head_dim,
        base if base is not None else (scaling or {}).get("rope_theta") or 10000.0,
        layout=layout,
        rotary_dim=rotary_dim,
        frequencies=theta,
        attention_factor=attention,
    )


def critical_dim(head_dim: int, base: float, train_len: int) -> int:
    """Liu et al. (2023, "Scaling Laws of RoPE-based Extrapolation"): the critical dimension
    d_extra = 2⌈(d/2)·log_base(L/2π)⌉, clamped to [0, d].

    Pair i's period 2π·base^(2i/d) stays within L while i < (d/2)·log_base(L/2π), so the first
    d_extra dims complete a full turn in training and the other d − d_extra (the slow pairs of
    :func:`posenc.rope.slow_pair_count`, two dims each) do not; the two counts agree unless
    (d/2)·log_base(L/2π) is a whole number. Llama 2 (d 128, base 10 000, L 4096): 92, i.e.
    46 fast pairs and 18 slow ones."""
    head_dim = check_dim(head_dim, "head_dim")
    base = check_real("base", base, above=1.0)
    train_len = check_int("train_len", train_len, minimum=1)
    pairs = math.ceil(head_dim / 2 * math.log(train_len / (2 * math.pi)) / math.log(base))
    return 2 * min(max(pairs, 0), head_dim // 2)


# --- what a method does to each pair ---------------------------------------------------

PAIR_TREATMENTS = ("kept", "blended", "interpolated")


def classify_pairs(theta: Tensor, scaled: Tensor, stretch: float) -> dict[str, int]:
    """Count the pairs a method keeps (θ'_i = θ_i), interpolates fully (θ'_i ≤ θ_i / stretch,
    slowed at least as much as the context is stretched) and blends (slowed, but less).

    A pair that turns faster than before (θ'_i > θ_i) is an error: no method does that."""
    stretch = check_real("stretch", stretch, above=0.0)
    if theta.shape != scaled.shape:
        raise ValueError(f"theta {tuple(theta.shape)} and scaled {tuple(scaled.shape)} differ")
    ratio = scaled.double() / theta.double()  # θ'_i / θ_i, 1 = untouched
    tol = 1e-9
    if (ratio > 1 + tol).any():
        raise ValueError("scaled has a pair faster than theta: not a stretch")
    kept = int((ratio >= 1 - tol).sum())
    interpolated = int((ratio <= (1 + tol) / stretch).sum()) if stretch > 1 else 0
    return {"kept": kept, "blended": len(ratio) - kept - interpolated, "interpolated": interpolated}


def pair_treatment(
    dim: int,
    scaling: RopeScaling | Mapping[str, Any] | None,
    stretch: float,
    base: float | None = None,
    *,
    seq_len: int | None = None,
    max_position_embeddings: int | None = None,
) -> dict[str, int]:
    """{"kept", "blended", "interpolated"}: how many of the dim/2 pairs a ``scaling`` dict
    leaves alone, slows partly, and slows by at least ``stretch`` (the context's stretch E/L);
    dynamic NTK is read at ``seq_len``. See :func:`classify_pairs`."""
    plain, _ = rope_init(dim, None, base)
    scaled, _ = rope_init(dim, scaling, base, max_position_embeddings=max_position_embeddings)
    if callable(scaled) and not isinstance(scaled, Tensor):
        scaled = scaled(0 if seq_len is None else check_int("seq_len", seq_len))
    return classify_pairs(plain, scaled, stretch)


# Model families whose checkpoints pair adjacent features (GPT-J's rotate_every_two).
INTERLEAVED_MODEL_TYPES = ("gptj", "codegen")


def _field(config, *names: str):
    """The first of ``names`` that the config (a dict or an HF config object) sets."""
    for name in names:
        value = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if value is not None:
            return value
    return None


def _config_scaling(config) -> dict:
    """The rope dict of a config, old style (rope_scaling + rope_theta) or new
    (rope_parameters, transformers 5), with rope_theta and partial_rotary_factor inside."""
    old, new = _field(config, "rope_scaling"), _field(config, "rope_parameters")
    if old and new and dict(old) != dict(new):
        raise ValueError("config sets both rope_scaling and rope_parameters: keep one")
    p = dict(old or new or {})
    if any(isinstance(v, Mapping) for v in p.values()):
        raise ValueError(
            "per-layer-type rope_parameters are not supported: pass one of them, e.g. "
            "config['rope_parameters']['full_attention']"
        )
    for key in ("rope_theta", "partial_rotary_factor"):
        value = _field(config, key)
        if value is not None:
            p.setdefault(key, value)
    return p


def rotary_from_config(config, *, layout: Layout | None = None) -> RotaryEmbedding:
    """The :class:`RotaryEmbedding` of a Hugging Face model config: its ``config.json`` dict or
    a ``PretrainedConfig``, old style or new. Reads head_dim (or hidden_size //
    num_attention_heads), the rope dict, rope_theta, partial_rotary_factor (or GPT-J's
    rotary_dim) and max_position_embeddings; ``layout`` defaults to "interleaved" for GPT-J
    style models and "half" otherwise."""
    if config is None:
        raise TypeError("config must be an HF config dict or object, got None")
    heads = _field(config, "num_attention_heads", "n_head")
    head_dim = _field(config, "head_dim")
    if head_dim is None:
        hidden = _field(config, "hidden_size", "n_embd", "d_model")
        if hidden is None or heads is None:
            raise ValueError("config needs head_dim, or hidden_size and num_attention_heads")
        head_dim = check_int("hidden_size", hidden, minimum=1) // check_int("heads", heads)
    if layout is None:
        interleaved = _field(config, "model_type") in INTERLEAVED_MODEL_TYPES
        layout = "interleaved" if interleaved else "half"
    return rotary_embedding(
        head_dim,
        _config_scaling(config),
        layout=layout,
        rotary_dim=_field(config, "rotary_dim"),
        max_position_embeddings=_field(config, "max_position_embeddings", "n_positions"),
    )
