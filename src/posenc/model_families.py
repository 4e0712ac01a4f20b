"""Who uses what: each model family's positional encoding, read from Hugging Face's code.

    python -m posenc.model_families            # print the table, live from transformers
    python -m posenc.model_families --write    # also refresh results/modern_families.json

Every column comes from transformers' config class defaults and modeling module source
(``inspect``), not from memory: the encoding (a rope_parameters dict or an ALiBi flag / ALiBi
code path), base θ, the rotated fraction of each head, the pair layout (``rotate_half`` on
halves, on adjacent pairs, or complex numbers), M-RoPE sections, NoPE layers. Defaults are
the config class's; a released checkpoint's config.json may override them (Llama 3 ships
θ = 500 000, Mistral v0.2 θ = 1 000 000).

:func:`position_evidence` answers a narrower question for any model, RoPE or not: which kinds
of position its code uses (a learned table, T5 buckets, RoPE, ALiBi, NoPE layers), each with
the line that shows it; the headline table (``posenc.course.headline``) checks its "used by"
column with it.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
from pathlib import Path

# family → (config class, modeling module under transformers.models)
FAMILIES = {
    "LLaMA 1–3": ("LlamaConfig", "llama"),
    "Llama 4": ("Llama4TextConfig", "llama4"),
    "Mistral": ("MistralConfig", "mistral"),
    "Gemma": ("GemmaConfig", "gemma"),
    "Qwen2 / 2.5": ("Qwen2Config", "qwen2"),
    "Qwen2-VL": ("Qwen2VLTextConfig", "qwen2_vl"),
    "GLM-4": ("Glm4Config", "glm4"),
    "GPT-NeoX / Pythia": ("GPTNeoXConfig", "gpt_neox"),
    "Phi": ("PhiConfig", "phi"),
    "Falcon": ("FalconConfig", "falcon"),
    "BLOOM": ("BloomConfig", "bloom"),
    "MPT": ("MptConfig", "mpt"),
    "DeepSeek-V2": ("DeepseekV2Config", "deepseek_v2"),
}
COLUMNS = ("encoding", "base", "rotary_fraction", "layout", "extra")


def _layout(module) -> str | None:
    """How the modeling code pairs features: from its rotate_half / apply_rotary_emb source."""
    source = inspect.getsource(module)
    if "view_as_complex" in source:
        return "interleaved (complex)"
    if hasattr(module, "rotate_half"):
        body = inspect.getsource(module.rotate_half)
        return "interleaved" if "0::2" in body else "half (rotate_half)"
    return None


def _alibi(config, module) -> bool:
    attn = getattr(config, "attn_config", None)
    if attn is not None and getattr(attn, "alibi", None) is not None:
        return bool(attn.alibi)  # MPT
    if getattr(config, "alibi", None) is not None:
        return bool(config.alibi)  # Falcon: a flag, RoPE by default
    return getattr(config, "rope_parameters", None) is None and "alibi" in inspect.getsource(module)


def family_row(config_name: str, module_name: str) -> dict:
    """One table row from the config class defaults and the modeling module."""
    import transformers

    config = getattr(transformers, config_name)()
    module = importlib.import_module(f"transformers.models.{module_name}.modeling_{module_name}")
    if _alibi(config, module):
        return {
            "encoding": "alibi",
            "base": None,
            "rotary_fraction": 0.0,
            "layout": None,
            "extra": "",
        }
    params = getattr(config, "rope_parameters", None) or {}
    fraction = params.get("partial_rotary_factor", 1.0)
    extra = []
    if getattr(config, "qk_rope_head_dim", None):  # MLA: rotary part beside the content part
        rope, nope = config.qk_rope_head_dim, config.qk_nope_head_dim
        fraction = rope / (rope + nope)
        extra.append(f"decoupled rotary key of {rope} dims shared by heads")
    if "mrope_section" in params or "qwen2_vl" in module_name:
        extra.append(f"M-RoPE sections {params.get('mrope_section', [16, 24, 24])}")
    no_rope = getattr(config, "no_rope_layers", None)
    if no_rope:
        extra.append(f"NoPE in {sum(1 for x in no_rope if not x)} of {len(no_rope)} layers")
    return {
        "encoding": "rope",
        "base": params.get("rope_theta"),
        "rotary_fraction": round(float(fraction), 4),
        "layout": _layout(module),
        "extra": "; ".join(extra),
    }


def who_uses_what() -> dict[str, dict]:
    """{family: row} for every family, live from the installed transformers."""
    return {family: family_row(*where) for family, where in FAMILIES.items()}


def format_table(rows: dict[str, dict]) -> str:
    """A Markdown table."""
    lines = ["| family | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for family, row in rows.items():
        cells = ["—" if row[c] in (None, "") else str(row[c]) for c in COLUMNS]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- which kind of position each model uses, with the line of code that shows it -------------

# ``self.wpe = nn.Embedding(config.max_position_embeddings, …)``: a learned absolute table
LEARNED_TABLE = re.compile(
    r"self\.(\w+)\s*=\s*nn\.Embedding\(\s*config\.(max_position_embeddings|n_positions)\b"
)
BUCKET_TABLE = re.compile(r"self\.(relative_attention_bias)\s*=\s*nn\.Embedding\(")


def _owner(source: str, at: int) -> str:
    """The name of the class whose body holds ``source[at]``."""
    return re.findall(r"^class (\w+)", source[:at], re.M)[-1]


def _learned(config, module, source: str) -> str | None:
    match = LEARNED_TABLE.search(source)
    if match is None:
        return None
    attr, field = match.groups()
    rows = getattr(config, field)
    return f"{_owner(source, match.start())}.{attr} = nn.Embedding({field} = {rows}, …)"


def _bucket_bias(config, module, source: str) -> str | None:
    match = BUCKET_TABLE.search(source)
    if match is None:
        return None
    buckets = config.relative_attention_num_buckets
    return f"{_owner(source, match.start())}.relative_attention_bias: {buckets} buckets × heads"


def _rope(config, module, source: str) -> str | None:
    params = getattr(config, "rope_parameters", None)
    rotary = [name for name, _ in inspect.getmembers(module, inspect.isfunction)]
    rotary = [name for name in rotary if "rotary" in name]
    if not params or not rotary or _alibi(config, module):
        return None
    part = params.get("partial_rotary_factor", 1.0)
    share = f", {part:.0%} of each head" if part != 1.0 else ""
    return f"rope_parameters θ = {params['rope_theta']:g}{share}; {rotary[0]}"


def _alibi_code(config, module, source: str) -> str | None:
    if not _alibi(config, module):
        return None
    attn = getattr(config, "attn_config", None)
    if attn is not None and getattr(attn, "alibi", None):
        return f"{type(attn).__name__}.alibi = True"
    builders = [name for name, _ in inspect.getmembers(module, inspect.isfunction)]
    return ", ".join(name for name in builders if "alibi" in name) + "; no rope_parameters"


def _nope_layers(config, module, source: str) -> str | None:
    layers = getattr(config, "no_rope_layers", None)
    if not layers:
        return None
    return f"no_rope_layers: NoPE in {sum(1 for x in layers if not x)} of {len(layers)} layers"


# kind → probe(config, module, source) → the evidence, or None when the model does not use it
POSITION_PROBES = {
    "learned": _learned,
    "relative bias": _bucket_bias,
    "rope": _rope,
    "alibi": _alibi_code,
    "nope": _nope_layers,
}


def position_evidence(config_name: str, module_name: str) -> dict[str, str]:
    """{kind: evidence} for each position kind the model's code uses, read from its config
    class defaults and modeling source: e.g. ``{"learned": "BertEmbeddings.position_embeddings
    = nn.Embedding(max_position_embeddings = 512, …)"}``."""
    import transformers

    config = getattr(transformers, config_name)()
    module = importlib.import_module(f"transformers.models.{module_name}.modeling_{module_name}")
    source = inspect.getsource(module)
    found = {kind: probe(config, module, source) for kind, probe in POSITION_PROBES.items()}
    return {kind: f"{config_name}: {text}" for kind, text in found.items() if text}


def main(argv: list[str] | None = None) -> int:
    import transformers

    rows = who_uses_what()
    print(format_table(rows))
    if argv and "--write" in argv:
        path = Path("results") / "modern_families.json"
        data = {"transformers_version": transformers.__version__, "rows": rows}
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
