"""Does a model use context beyond its training length? Score the same tokens two ways.

A flat perplexity at 8L says the model is not *hurt* by long windows; it does not say the
model is *helped* by them. To ask the second question, take the tokens at positions 4L … 8L − 1
of each 8L window and score them

    long:  inside the 8L window (each sees 4L … 8L − 1 earlier bytes), and
    short: with only the last L bytes as context (a fresh window of L ending at the token),

then gain = loss_short − loss_long (nats per byte). gain > 0: the extra context lowers the loss,
so the model uses it; gain ≤ 0: it does not (it may even be hurt by it).

The short side is exact: every token gets its own window of L bytes. (A banded attention mask
over the 8L window would not do: with n layers, a band of L lets information travel n·L back.)
"""

from __future__ import annotations

import torch
from torch import Tensor


def short_context_windows(
    data: Tensor, seq_len: int, total_tokens: int, context: int
) -> tuple[Tensor, Tensor]:
    """Inputs (n, context) and targets (n,) for the tokens in the second half of each window.

    The held-out bytes data[0 : total_tokens] are cut into windows of ``seq_len`` (as
    :func:`posenc.experiments.data.evaluation_windows` cuts them); the token at global index
    g = k·seq_len + p, p ∈ [seq_len/2, seq_len), predicts data[g + 1] from data[g − context + 1
    … g], which lie inside its own window since context ≤ seq_len/2."""
    if seq_len % 2 or not 1 <= context <= seq_len // 2:
        raise ValueError(
            f"context must be in [1, seq_len / 2] with seq_len even, got context={context} "
            f"and seq_len={seq_len}"
        )
    if total_tokens % seq_len or total_tokens + 1 > len(data):
        raise ValueError(
            f"total_tokens must be a multiple of seq_len ({seq_len}) and at most "
            f"{len(data) - 1}, got {total_tokens}"
        )
    starts = torch.arange(0, total_tokens, seq_len)  # (windows,)
    offsets = torch.arange(seq_len // 2, seq_len)  # positions p in the second half
    g = (starts[:, None] + offsets[None, :]).flatten()  # (n,) global index of each input token
    windows = data.long().unfold(0, context, 1)  # (len − context + 1, context): row i = data[i:]
    return windows[g - context + 1], data.long()[g + 1]


@torch.no_grad()
def short_context_loss(
    model, data: Tensor, seq_len: int, total_tokens: int, context: int, batch: int = 512
) -> float:
    """Mean loss (nats) of the second-half tokens of every ``seq_len`` window when each is
    predicted from only the ``context`` bytes that end at it (at positions 0 … context − 1)."""
    ids, targets = short_context_windows(data, seq_len, total_tokens, context)
    total = 0.0
    for i in range(0, len(ids), batch):
        x = ids[i : i + batch]  # (b, context)
        y = torch.cat([x[:, 1:], targets[i : i + batch, None]], dim=1)  # next byte of each input
        total += model.token_losses(x, y)[:, -1].double().sum().item()  # only the last position
    return total / len(ids)
