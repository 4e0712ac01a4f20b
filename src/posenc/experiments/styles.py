"""One look per scheme and per RoPE scaling method, shared by every plot of the course.

matplotlib hands out colours in order, so a scheme's colour would depend on which rows a
figure happens to draw (a missing row shifts every later one). Plots ask here instead.
"""

from __future__ import annotations

# Scaling methods share the colour of the extrapolation-study row that runs them
# (linear ≡ rope_pi, ntk ≡ rope_ntk); every entry differs from every other in colour or line.
STYLES: dict[str, dict[str, str]] = {
    "nope": {"color": "#7f7f7f", "marker": "x", "linestyle": "-"},
    "learned": {"color": "#8c564b", "marker": "s", "linestyle": "-"},
    "learned_clamped": {"color": "#8c564b", "marker": "s", "linestyle": "--"},
    "sinusoidal": {"color": "#ff7f0e", "marker": "^", "linestyle": "-"},
    "t5": {"color": "#2ca02c", "marker": "D", "linestyle": "-"},
    "rope": {"color": "#1f77b4", "marker": "o", "linestyle": "-"},
    "rope_pi": {"color": "#17becf", "marker": "o", "linestyle": "--"},
    "rope_ntk": {"color": "#9467bd", "marker": "o", "linestyle": "--"},
    "alibi": {"color": "#d62728", "marker": "v", "linestyle": "-"},
    "linear": {"color": "#17becf", "marker": "o", "linestyle": "--"},
    "ntk": {"color": "#9467bd", "marker": "o", "linestyle": "--"},
    "dynamic": {"color": "#e377c2", "marker": "P", "linestyle": "--"},
    "yarn": {"color": "#bcbd22", "marker": "*", "linestyle": "--"},
    "llama3": {"color": "#000000", "marker": "h", "linestyle": "--"},
}


def style(name: str) -> dict[str, str]:
    """Keyword arguments for ``ax.plot`` that draw ``name`` as every figure draws it."""
    if name not in STYLES:
        raise ValueError(f"name must be one of {sorted(STYLES)}, got {name!r}")
    return {**STYLES[name], "label": name}
