"""A small pre-LN decoder-only language model whose position scheme is one argument.

    tokens → embedding (+ absolute positions) → N × [x + Attn(LN(x)), x + MLP(LN(x))] → LN → logits

Schemes: ``nope`` (none), ``learned``, ``sinusoidal``, ``t5``, ``rope``, ``alibi``. Relative
schemes act inside attention through :class:`posenc.attention.PositionScheme`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from posenc.alibi import ALiBi
from posenc.attention import MultiHeadAttention, PositionScheme
from posenc.learned import LearnedPositionalEmbedding
from posenc.relative_bias import T5RelativeBias
from posenc.rope import RotaryEmbedding
from posenc.rope_scaling import RopeScaling, rotary_embedding
from posenc.sinusoidal import SinusoidalPositionalEncoding
from posenc.xpos import XPos

SCHEMES = ("nope", "learned", "sinusoidal", "t5", "rope", "alibi")
EXTRA_SCHEMES = ("xpos",)  # notebook 10's variants, not in notebook 06's study

# T5 (Raffel et al., 2020; T5Config's defaults) uses 32 buckets up to max_distance 128: in its
# decoder, distances 0 … 15 get a bucket each and 16 … 128 share 16 log-spaced ones. Our decoder
# sets max_distance to the training length L (32 by default), a range 4× shorter, so it takes
# half the buckets: 0 … 7 exact, 8 … L log-spaced — the same exact/log split on a shorter range.
# For L < 16 the count drops to L, since a unidirectional table needs max_distance > buckets/2.
T5_NUM_BUCKETS = 16


@dataclass
class ModelConfig:
    scheme: str = "rope"
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    max_len: int = 32  # the training length: the learned table's rows, T5's max_distance
    # RoPE's base: 10, so that 4 of the 16 pairs of a 32-dim head (25 %) turn less than once
    # within L = 32, as 18 of 64 (28 %) do in Llama 2 at 4096 (posenc.rope.LLAMA2_REGIME).
    # Base 10 000 at L = 32 would leave 13 of 16 pairs (81 %) that slow: not a real model's regime.
    rope_base: float = 10.0
    nope_every: int = 0  # > 0: every nope_every-th layer attends with no positions (Llama 4)


def make_scheme(cfg: ModelConfig) -> PositionScheme:
    """One scheme object, shared by every layer (they hold no per-layer state except T5)."""
    head_dim = cfg.d_model // cfg.n_heads
    if cfg.scheme == "nope":
        return PositionScheme()
    if cfg.scheme == "learned":
        return LearnedPositionalEmbedding(cfg.max_len, cfg.d_model)
    if cfg.scheme == "sinusoidal":
        return SinusoidalPositionalEncoding(cfg.d_model)
    if cfg.scheme == "t5":
        # Zero-initialised, max_distance = training length: every bucket that a longer input
        # reaches was trained (the last bucket holds all distances near L and beyond).
        return T5RelativeBias(
            cfg.n_heads,
            num_buckets=min(T5_NUM_BUCKETS, cfg.max_len),
            max_distance=cfg.max_len,
            bidirectional=False,
            zero_init=True,
        )
    if cfg.scheme == "rope":
        return RotaryEmbedding(head_dim, cfg.rope_base)
    if cfg.scheme == "alibi":
        return ALiBi(cfg.n_heads)
    if cfg.scheme == "xpos":
        return XPos(head_dim, cfg.rope_base)
    raise ValueError(f"scheme must be one of {SCHEMES + EXTRA_SCHEMES}, got {cfg.scheme!r}")


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, scheme: PositionScheme):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = MultiHeadAttention(cfg.d_model, cfg.n_heads, scheme)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model),
            nn.GELU(),
            nn.Linear(4 * cfg.d_model, cfg.d_model),
        )

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), positions)
        return x + self.mlp(self.ln_2(x))


class TinyLM(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.scheme = make_scheme(cfg)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, self.layer_scheme(i)) for i in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def layer_scheme(self, layer: int) -> PositionScheme:
        """The scheme of layer ``layer`` (0-based): none in every ``nope_every``-th layer."""
        every = self.cfg.nope_every
        return PositionScheme() if every and (layer + 1) % every == 0 else self.scheme

    def forward(self, ids: Tensor, positions: Tensor | None = None) -> Tensor:
        """ids: (batch, seq) -> logits (batch, seq, vocab). ``positions`` default 0 … seq − 1."""
        positions = (
            torch.arange(ids.shape[-1], device=ids.device) if positions is None else positions
        )
        x = self.scheme.embed(self.tok(ids), positions)  # (batch, seq, d_model)
        for block in self.blocks:
            x = block(x, positions)
        return self.head(self.ln_f(x))

    def token_losses(self, ids: Tensor, targets: Tensor, positions: Tensor | None = None) -> Tensor:
        """Cross-entropy of every next-byte prediction, (batch, seq), in nats."""
        logits = self(ids, positions)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(
            targets.shape
        )


def with_scheme(model: TinyLM, scheme: PositionScheme) -> TinyLM:
    """A copy of ``model`` (same weights) whose layers all use ``scheme``; the original is
    untouched. How a trained RoPE model is run with rescaled frequencies."""
    clone = copy.deepcopy(model)
    clone.scheme = scheme
    for block in clone.blocks:
        block.attn.scheme = scheme
    return clone


def with_rope_scaling(model: TinyLM, scaling: RopeScaling) -> TinyLM:
    """A copy of a trained RoPE model whose rotary embedding follows a Hugging Face
    ``rope_scaling`` dict; its trained length cfg.max_len is max_position_embeddings and its
    trained base cfg.rope_base is the base (a ``rope_theta`` in the dict must agree)."""
    cfg = model.cfg
    head_dim = cfg.d_model // cfg.n_heads
    theta = scaling.get("rope_theta", cfg.rope_base)
    if theta != cfg.rope_base:
        raise ValueError(
            f"scaling's rope_theta {theta!r} != the model's rope_base {cfg.rope_base!r}"
        )
    rope = rotary_embedding(
        head_dim, scaling, base=cfg.rope_base, max_position_embeddings=cfg.max_len
    )
    return with_scheme(model, rope)
