"""Plots and ipywidgets explorers the notebooks share (a notebook holds no plotting logic).

Widgets degrade gracefully: with no front end attached (nbval, ``make grade``) an explorer
still runs its function once with the default slider values.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch.nn.functional as F
from torch import Tensor


def cosine_similarity_matrix(table: Tensor) -> Tensor:
    """cos(P[i], P[j]) for every pair of rows.  (n, d) -> (n, n)."""
    unit = F.normalize(table.detach().float(), dim=-1)
    return unit @ unit.T


def heatmap(
    ax,
    matrix: Tensor,
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    label: str,
    cmap: str = "RdBu_r",
    vmin: float | None = -1.0,
    vmax: float | None = 1.0,
):
    """Draw ``matrix`` on ``ax`` with a titled, labelled colour bar; return the image."""
    image = ax.imshow(
        matrix.detach().cpu(),
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.figure.colorbar(image, ax=ax, label=label)
    return image


def sinusoidal_explorer(seq_len: int = 100, dim: int = 64, base: float = 10000.0):
    """Sliders for positions, dim and base: the PE heatmap and the PE[p]·PE[p+k] curve."""
    import ipywidgets as widgets

    from posenc.sinusoidal import relative_dot_product_curve, sinusoidal_encoding

    def draw(seq_len=seq_len, dim=dim, log10_base=4.0):
        base = 10.0**log10_base
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
        pe = sinusoidal_encoding(seq_len, dim, base)
        heatmap(
            left,
            pe,
            title=f"PE table (dim {dim}, base {base:,.0f})",
            xlabel="column (2i: sin, 2i+1: cos)",
            ylabel="position p",
            label="value",
        )
        curve = relative_dot_product_curve(dim, seq_len - 1, base)
        right.plot(curve, label=f"base {base:,.0f}")
        right.axhline(0, color="grey", lw=0.5)
        right.set_title("PE[p]·PE[p+k] (the same for every p)")
        right.set_xlabel("offset k (positions)")
        right.set_ylabel("dot product")
        right.legend()
        plt.show()

    return widgets.interact(
        draw,
        seq_len=widgets.IntSlider(value=seq_len, min=8, max=512, step=8, description="positions"),
        dim=widgets.IntSlider(value=dim, min=2, max=256, step=2, description="dim"),
        log10_base=widgets.FloatSlider(
            value=4.0, min=1.0, max=6.0, step=0.5, description="log₁₀ base"
        ),
    )
