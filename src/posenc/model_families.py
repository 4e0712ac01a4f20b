"""Who uses what: each model family's positional encoding, read from Hugging Face's code.

    python -m posenc.model_families            # print the table, live from transformers
    python -m posenc.model_families --write    # also refresh results/modern_families.json

Every column comes from transformers' config class defaults and modeling module source
(``inspect``), not from memory: the encoding (a rope_parameters dict or an ALiBi flag / ALiBi
code path), base θ, the rotated fraction of each head, the pair layout (``rotate_half`` on
halves, on adjacent pairs, or complex numbers), M-RoPE sections, NoPE layers. Defaults are
the config class's; a released checkpoint's config.json may override them (Llama 3 ships
θ = 500 000, Mistral v0.2 θ = 1 000 000).
"""

from __future__ import annotations

import importlib
import inspect
import json
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
