"""logN attention scaling (Chiang & Cholak, 2022; Su, 2021; Qwen's ``use_logn_attn``).

Softmax over n keys spreads its mass thinner as n grows: for scores of fixed spread the
entropy of the weights grows like log n ("attention dilution"). Multiplying the query at
position m by

    s(m) = max(1, log(m + 1) / log L)            (L = training length)

sharpens the scores just enough that the entropy stays near its value at L
("entropy-invariant" scaling). Inside L nothing changes, so a trained model is untouched
there. Qwen (1st generation) applies it to the query after RoPE, at inference only.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from posenc.attention import PositionScheme


def logn_factors(positions: Tensor, train_len: int) -> Tensor:
    """s(m) = max(1, log(m + 1) / log L) for each position m, float32."""
    if train_len < 2:
        raise ValueError(f"train_len must be >= 2 (log L must be positive), got {train_len}")
    m1 = positions.double() + 1
    return torch.clamp(torch.log(m1) / math.log(train_len), min=1.0).float()


class LogNScaled(PositionScheme):
    """Wrap a scheme: its queries are multiplied by s(m) after it has rotated them."""

    def __init__(self, inner: PositionScheme, train_len: int):
        super().__init__()
        logn_factors(torch.zeros(1), train_len)  # validates
        self.inner, self.train_len = inner, train_len

    def embed(self, x: Tensor, positions: Tensor) -> Tensor:
        return self.inner.embed(x, positions)

    def rotate(self, q: Tensor, k: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
        q, k = self.inner.rotate(q, k, positions)
        q_pos = positions[..., positions.shape[-1] - q.shape[-2] :]  # the queries' positions
        return q * logn_factors(q_pos, self.train_len).to(q.dtype)[:, None], k

    def bias(self, q_len: int, k_len: int, **where) -> Tensor | None:
        return self.inner.bias(q_len, k_len, **where)  # where: causal, offset, positions, …
