"""A task small enough to train in seconds on a CPU, that cannot be solved without positions.

**Look-back:** read random tokens; at every position t ≥ k, predict the token seen k places
earlier. A causal attention head solves it by attending from t to t − k, which it can only find
if the model carries position. Notebooks 01–05 train it, in one configuration (below), with
each encoding, and test it past the training length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posenc.attention import MultiHeadAttention, PositionScheme

# One configuration for every encoding in notebooks 01–05: sequences of 64, width 32, 2 layers
# of 4 heads (head_dim 8, so RoPE has 4 pairs).  RoPE's base is 25, so 1 of the 4 pairs (25 %)
# turns less than once within the 64 training positions, as 18 of 64 (28 %) do in Llama 2 at
# 4096 (posenc.rope.base_for_slow_fraction(64, 8, 18 / 64) = 25.3).
TOY_SEQ_LEN = 64
TOY_DIM = 32
TOY_HEADS = 4
TOY_LAYERS = 2
TOY_ROPE_BASE = 25.0


class LookbackModel(nn.Module):
    """Token embedding + position scheme → causal attention layers (residual) → logits."""

    def __init__(
        self,
        scheme: PositionScheme,
        vocab: int = 16,
        dim: int = TOY_DIM,
        *,
        num_heads: int = TOY_HEADS,
        num_layers: int = TOY_LAYERS,
    ):
        super().__init__()
        self.scheme = scheme
        self.tok = nn.Embedding(vocab, dim)
        self.layers = nn.ModuleList(
            MultiHeadAttention(dim, num_heads, scheme) for _ in range(num_layers)
        )
        self.unembed = nn.Linear(dim, vocab)

    def forward(
        self, ids: Tensor, positions: Tensor | None = None, key_padding_mask: Tensor | None = None
    ) -> Tensor:
        """ids: (batch, seq) -> logits (batch, seq, vocab). ``key_padding_mask`` (batch, seq):
        False hides that key from every query."""
        positions = torch.arange(ids.shape[-1]) if positions is None else positions
        h = self.scheme.embed(self.tok(ids), positions)  # (batch, seq, dim)
        for attention in self.layers:
            h = h + attention(h, positions, key_padding_mask=key_padding_mask)
        return self.unembed(h)


def lookback_batch(
    batch: int, seq_len: int, vocab: int, lookback: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Random token ids (batch, seq_len) and targets: the id ``lookback`` places earlier."""
    ids = torch.randint(vocab, (batch, seq_len), generator=generator)
    targets = torch.roll(ids, lookback, dims=1)
    targets[:, :lookback] = -100  # nothing to look back at: ignored by the loss
    return ids, targets


def train_lookback(
    scheme: PositionScheme,
    *,
    seq_len: int = TOY_SEQ_LEN,
    lookback: int = 2,
    vocab: int = 16,
    dim: int = TOY_DIM,
    steps: int = 600,
    batch: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    num_heads: int = TOY_HEADS,
    num_layers: int = TOY_LAYERS,
    progress: bool = True,
) -> tuple[LookbackModel, list[float]]:
    """Train a :class:`LookbackModel` with Adam; return it and the loss of every step.

    With ``progress``, a progress bar appears once training has taken more than 2 s."""
    from tqdm.auto import tqdm

    if lookback < 1 or lookback >= seq_len:
        raise ValueError(f"lookback must be in [1, seq_len), got {lookback} with seq_len={seq_len}")
    torch.manual_seed(seed)
    model = LookbackModel(scheme, vocab, dim, num_heads=num_heads, num_layers=num_layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in tqdm(range(steps), desc="training", unit="step", delay=2.0, disable=not progress):
        ids, targets = lookback_batch(batch, seq_len, vocab, lookback, g)
        logits = model(ids)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


@torch.no_grad()
def lookback_accuracy(
    model: LookbackModel,
    seq_len: int,
    *,
    lookback: int = 2,
    positions: Tensor | None = None,
    n: int = 256,
    seed: int = 1,
) -> Tensor:
    """Accuracy at each position t ≥ lookback on ``n`` fresh sequences.  Returns (seq_len,),
    NaN for the first ``lookback`` positions (no target there)."""
    vocab = model.tok.num_embeddings
    ids, targets = lookback_batch(n, seq_len, vocab, lookback, torch.Generator().manual_seed(seed))
    correct = (model(ids, positions).argmax(-1) == targets).float()  # (n, seq_len)
    accuracy = correct.mean(0)
    accuracy[:lookback] = float("nan")
    return accuracy


@torch.no_grad()
def last_query_accuracy(
    model: LookbackModel,
    seq_len: int,
    *,
    hidden_offsets: range | None = None,
    lookback: int = 2,
    n: int = 512,
    seed: int = 1,
) -> float:
    """Accuracy of the last query (position seq_len − 1), optionally with the keys at
    ``hidden_offsets`` (distances back from that query) hidden from every layer."""
    vocab = model.tok.num_embeddings
    ids, targets = lookback_batch(n, seq_len, vocab, lookback, torch.Generator().manual_seed(seed))
    keep = torch.ones(n, seq_len, dtype=torch.bool)
    for offset in hidden_offsets or ():
        if 0 < offset < seq_len and offset != lookback:
            keep[:, seq_len - 1 - offset] = False
    logits = model(ids, key_padding_mask=keep)[:, -1]  # (n, vocab)
    return (logits.argmax(-1) == targets[:, -1]).float().mean().item()
