"""How much a measurement moves between seeds, and whether a difference survives it.

A study that trains each model with several seeds reports the mean of each figure and its
spread: the sample standard deviation sd = √(Σ (x_i − x̄)² / (n − 1)) and the range [min, max].
A verdict "A is lower than B" is only made when the two ranges do not overlap; otherwise the
two are a tie at this number of seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TIE = "tie"


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """{"sd": sample sd (None for a single value), "min": …, "max": …} of ``values``."""
    if len(values) == 0:
        raise ValueError("values must hold at least one number, got an empty sequence")
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"sd": sd, "min": min(values), "max": max(values)}


def lower(name_a: str, a: dict, name_b: str, b: dict) -> str:
    """The name whose whole range lies below the other's, or ``"tie"`` when the ranges overlap.

    ``a`` and ``b`` are spreads as :func:`spread` returns them (lower is better for a loss or a
    perplexity)."""
    if a["max"] < b["min"]:
        return name_a
    if b["max"] < a["min"]:
        return name_b
    return TIE


def mean_pm(mean: float, s: dict, digits: int = 3) -> str:
    """``"6.323 ± 0.012"`` (the sample sd), or just the mean when there was one seed."""
    if s["sd"] is None:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {s['sd']:.{digits}f}"
