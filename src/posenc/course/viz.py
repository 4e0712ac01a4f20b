"""Plots and ipywidgets explorers the notebooks share (a notebook holds no plotting logic).

Widgets degrade gracefully: with no front end attached (nbval, ``make grade``) an explorer
still runs its function once with the default slider values.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import matplotlib.pyplot as plt
import torch
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


def permutation_gap_explorer(gap: Callable[[int, bool], float]):
    """A slider for the cyclic shift of the tokens; prints ``gap(shift, causal)`` for causal
    attention and for attention with no mask (notebook 00)."""
    import ipywidgets as widgets

    def show(shift=3):
        for causal in (False, True):
            print(f"shift {shift}: causal={causal!s:5}  gap = {gap(shift, causal):.3f}")

    return widgets.interact(show, shift=widgets.IntSlider(value=3, min=0, max=9))


def t5_bucket_explorer(bucket_fn: Callable[..., Tensor]):
    """Sliders for T5's bucket count and max distance; plots ``bucket_fn`` (a function with
    T5's signature, e.g. the learner's ``t5_relative_bucket``) over offsets −400 … 400, both
    directions (notebook 03)."""
    import ipywidgets as widgets

    def show(num_buckets=32, max_distance=128):
        offsets = torch.arange(-400, 401)
        fig, ax = plt.subplots(figsize=(8, 3), layout="constrained")
        for bidirectional, label in ((True, "bidirectional"), (False, "unidirectional")):
            buckets = bucket_fn(
                offsets,
                bidirectional=bidirectional,
                num_buckets=num_buckets,
                max_distance=max_distance,
            )
            ax.plot(offsets, buckets, label=label)
        ax.set_xlabel("offset j − i (positions)")
        ax.set_ylabel("bucket index")
        ax.set_title(f"{num_buckets} buckets, max_distance {max_distance}")
        ax.legend()
        plt.show()

    return widgets.interact(
        show,
        num_buckets=widgets.IntSlider(value=32, min=8, max=128, step=8),
        max_distance=widgets.IntSlider(value=128, min=32, max=1024, step=32),
    )


def _draw_rotating_pair(ax, theta: Tensor, position: int, pair: int) -> None:
    """The point (cos mθ_i, sin mθ_i) for m = 0 … position: one pair's path on the circle."""
    path = torch.arange(position + 1).float() * theta[pair]
    ax.plot(path.cos(), path.sin(), color="lightgrey", label="positions 0 … m")
    end = path[-1].item()
    ax.plot([0, math.cos(end)], [0, math.sin(end)], marker="o", label=f"position m = {position}")
    ax.set_aspect("equal")
    ax.set_xlim(-1.2, 1.2)
    ax.set_ylim(-1.2, 1.2)
    ax.set_xlabel("cos(m θ_i)")
    ax.set_ylabel("sin(m θ_i)")
    ax.set_title(f"pair {pair}: θ = {theta[pair]:.4g} rad per position")
    ax.legend(fontsize=8, loc="lower left")


def _draw_wavelengths(ax, theta: Tensor, train_len: int) -> None:
    """Wavelength 2π/θ_i per pair, against the training length."""
    ax.semilogy(2 * math.pi / theta, marker=".", label="wavelength 2π/θ_i")
    ax.axhline(train_len, color="grey", ls="--", label=f"training length {train_len}")
    ax.set_xlabel("pair index i")
    ax.set_ylabel("wavelength (positions)")
    ax.set_title("pairs slower than the window never complete a turn in training")
    ax.legend(fontsize=8)


def rope_rotation_explorer(frequencies_fn: Callable[[int], Tensor], dim: int = 64):
    """Sliders for position, pair and training length: one pair rotating on its circle, and
    every pair's wavelength against the training length (notebook 04). ``frequencies_fn(dim)``
    returns θ_i, e.g. the learner's ``rope_frequencies``."""
    import ipywidgets as widgets

    theta = frequencies_fn(dim)

    def show(position=10, pair=0, train_len=512):
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
        _draw_rotating_pair(left, theta, position, pair)
        _draw_wavelengths(right, theta, train_len)
        plt.show()

    return widgets.interact(
        show,
        position=widgets.IntSlider(value=10, min=0, max=500),
        pair=widgets.IntSlider(value=0, min=0, max=dim // 2 - 1),
        train_len=widgets.IntSlider(value=512, min=64, max=8192, step=64),
    )


def plot_score_decay(ax, distances: Tensor, curves: dict[str, Tensor], bound: Tensor) -> None:
    """Measured RoPE scores against distance (each curve divided by its value at distance 0)
    beside RoFormer's decay bound, divided the same way (notebook 04)."""
    ax.plot(distances, bound / bound[0], color="black", ls="--", lw=1, label="RoFormer's bound")
    for label, curve in curves.items():
        ax.plot(distances, curve / curve[0], lw=1.2, label=label)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("relative distance m − n (positions)")
    ax.set_ylabel("relative to distance 0")
    ax.legend(fontsize=8)


def plot_score_profile(
    ax, profile: Tensor, *, lookback: int, train_len: int, aliases: list[int]
) -> None:
    """Each head's content-averaged score against the distance m − n, the look-back offset's
    score as a dotted line per head, and the unseen offsets that reach it (notebook 04)."""
    distances = torch.arange(profile.shape[-1])
    for head, row in enumerate(profile):
        (line,) = ax.plot(distances, row, lw=1, label=f"head {head}")
        ax.axhline(row[lookback].item(), color=line.get_color(), ls=":", lw=0.8)
    ax.axvline(train_len, color="grey", ls="--", lw=1, label=f"training length {train_len}")
    for r in aliases:
        ax.axvline(r, color="red", alpha=0.25, lw=2)
    ax.set_xlabel("distance m − n (positions); red: aliases of the look-back offset")
    ax.set_ylabel("mean score q·k/√d")
    ax.legend(fontsize=8, ncol=3)


def plot_window_band(
    ax,
    windows: Tensor,
    *,
    width: int,
    train_len: int,
    chance: float,
    live: Tensor | None = None,
) -> None:
    """Accuracy per window of ``width`` positions over seeds ((seeds, n_windows)): the mean,
    a min–max band, and optionally one run drawn on top (notebook 04)."""
    from posenc.experiments.styles import style

    centres = torch.arange(windows.shape[-1]) * width + width / 2
    rope = style("rope")
    ax.fill_between(
        centres,
        windows.min(0).values,
        windows.max(0).values,
        color=rope["color"],
        alpha=0.2,
        label=f"min–max over {len(windows)} seeds",
    )
    ax.plot(centres, windows.mean(0), **{**rope, "label": "RoPE, mean over seeds"})
    if live is not None:
        ax.plot(centres, live, color=rope["color"], ls=":", label="this notebook's model")
    ax.axvline(train_len, color="grey", ls="--", lw=1, label="training length")
    ax.axhline(chance, color="grey", ls=":", lw=1, label=f"chance (1/{round(1 / chance)})")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel(f"position t (centre of each window of {width})")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.legend(fontsize=8)


def alibi_head_explorer(slopes_fn: Callable[[int], Tensor], bias_fn: Callable[[int, int], Tensor]):
    """Sliders for the head count, the head and the length: one head's ALiBi bias, and the
    attention weights that bias alone gives the last query (notebook 05). ``slopes_fn`` and
    ``bias_fn`` have the signatures of ``alibi_slopes(num_heads)`` and
    ``alibi_bias(num_heads, seq_len)``."""
    import ipywidgets as widgets

    def show(num_heads=8, head=0, seq=32):
        head = min(head, num_heads - 1)
        slope = float(slopes_fn(num_heads)[head])
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4), layout="constrained")
        bias = bias_fn(num_heads, seq)[..., head, :, :].reshape(seq, seq)  # (seq, seq)
        heatmap(
            left,
            bias.clamp(min=-10),
            title=f"head {head} of {num_heads}: m = {slope:.4f}",
            xlabel="key j",
            ylabel="query i",
            label="bias",
            cmap="viridis",
            vmin=-10,
            vmax=0,
        )
        distance = torch.arange(seq - 1, -1, -1).float()  # i − j for the last query
        right.bar(torch.arange(seq), torch.softmax(-slope * distance, 0))
        right.set_xlabel("key j")
        right.set_ylabel("attention weight of the last query")
        right.set_title("bias-only attention")
        plt.show()

    return widgets.interact(
        show,
        num_heads=widgets.IntSlider(value=8, min=1, max=32),
        head=widgets.IntSlider(value=0, min=0, max=31),
        seq=widgets.IntSlider(value=32, min=4, max=128),
    )
