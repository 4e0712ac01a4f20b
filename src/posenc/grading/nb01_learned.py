"""Graders for notebook 01 · Learnable absolute position embeddings."""

from __future__ import annotations

import torch

from posenc.grading.core import (
    Case,
    Mismatch,
    Mistakes,
    allowed_error,
    call,
    exercise,
    expect_close,
    randn,
)

NOTEBOOK = "01_learned_positions"
OFF_LIMITS = (
    "posenc.learned.embed_with_positions",
    "posenc.learned.max_usable_length",
    "posenc.learned.LearnedPositionalEmbedding",
)


def _embed_mistakes(ids, tokens, positions) -> Mistakes:
    seq = ids.shape[-1]
    m = {
        "positions start at 1: the first token uses row 0 of the position table": lambda: (
            tokens[ids] + positions[1 : seq + 1]
        ),
        "position vectors were looked up by token id; look them up by position 0 … seq − 1": (
            lambda: tokens[ids] + positions[ids]
        ),
        "the position vectors are missing: add P[0 … seq − 1] to the token vectors": lambda: tokens[
            ids
        ],
        "token and position vectors were multiplied; they are added": lambda: (
            tokens[ids] * positions[:seq]
        ),
        "positions run backwards: token t gets row t": lambda: (
            tokens[ids] + positions[:seq].flip(0)
        ),
    }
    if ids.ndim == 2:
        m["positions were taken along the batch axis; they run along the sequence axis (-1)"] = (
            lambda: tokens[ids] + positions[: ids.shape[0]][:, None, :]
        )
    return Mistakes(m)


def _embed_case(label, seed, ids_shape, vocab, max_len, dim) -> Case:
    def run(fn):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(vocab, ids_shape, generator=g)
        tokens, positions = randn(vocab, dim, seed=seed + 1), randn(max_len, dim, seed=seed + 2)
        out = call(fn, ids, tokens, positions)
        seq = ids.shape[-1]
        truth = tokens.double()[ids] + positions.double()[:seq]  # (..., seq, dim)
        # one float32 addition: rounded once, at most u·(|token| + |position|)
        allowed = allowed_error(tokens.abs().max().item() + positions.abs().max().item())
        if isinstance(out, torch.Tensor) and out.shape[:-1] == truth.shape[:-1]:
            if out.shape[-1] == 2 * dim:
                raise Mismatch(
                    "the last axis is 2·dim: token and position vectors were concatenated; "
                    "they are added (both live in the same d_model space)",
                    specific=True,
                )
        mistakes = _embed_mistakes(ids, tokens.double(), positions.double())
        expect_close(out, truth, label, allowed, mistakes)

    return Case(label, run)


def _too_long_case() -> Case:
    label = "a sequence longer than the table raises ValueError"

    def run(fn):
        ids = torch.zeros(9, dtype=torch.long)
        try:
            fn(ids, randn(4, 3, seed=1), randn(8, 3, seed=2))
        except ValueError:
            return
        except Exception as err:
            raise Mismatch(
                f"{label}: got {type(err).__name__}; check seq > max_len first and raise "
                "ValueError",
                specific=True,
            ) from None
        raise Mismatch(
            f"{label}: 9 tokens with an 8-row table returned a result; there is no vector "
            "for position 8 — raise ValueError",
            specific=True,
        )

    return Case(label, run)


def _same_token_case() -> Case:
    label = "the same token at two positions differs by exactly P[i] − P[j]"

    def run(fn):
        tokens, positions = randn(5, 6, seed=3), randn(10, 6, seed=4)
        out = call(fn, torch.full((10,), 2), tokens, positions)
        if not isinstance(out, torch.Tensor) or out.shape != (10, 6):
            raise Mismatch(f"{label}: expected shape (10, 6)")
        if not torch.allclose(out[7] - out[3], positions[7] - positions[3], atol=1e-5):
            raise Mismatch(f"{label}: it does not", specific=False)

    return Case(label, run)


@exercise("embed_with_positions", NOTEBOOK, OFF_LIMITS)
def embed_with_positions_cases() -> list[Case]:
    return [
        _embed_case("one sequence of 5 tokens", 0, (5,), 11, 16, 4),
        _embed_case("one token", 10, (1,), 3, 4, 2),
        _embed_case("batch of 3 × 7 tokens", 20, (3, 7), 13, 12, 8),
        _embed_case("sequence exactly max_len long", 30, (2, 9), 5, 9, 6),
        _embed_case("batch (2, 2) of 6 tokens", 40, (2, 2, 6), 7, 10, 3),
        _same_token_case(),
        _too_long_case(),
    ]


def _length_case(label, rows, dim, offset) -> Case:
    def run(fn):
        table = randn(rows, dim, seed=rows)
        out = call(fn, table, offset) if offset is not None else call(fn, table)
        expected = rows - (offset or 0)  # every row but the reserved ones serves a position
        if isinstance(out, torch.Tensor) and out.numel() == 1:
            out = int(out.item())
        if not isinstance(out, int) or isinstance(out, bool):
            raise Mismatch(f"{label}: returned {type(out).__name__}, expected an int")
        if out == expected:
            return
        off = offset or 0
        wrong = {
            dim - off: "that is the embedding width (shape[1]); the length is the number of rows",
            dim: "that is the embedding width (shape[1]); the length is the number of rows",
            rows - off - 1: "off by one: that is the last usable *position*, not the length",
            rows: "the reserved offset rows were not subtracted (OPT reserves 2)",
            rows + off: "the offset is subtracted, not added: reserved rows serve no position",
        }
        raise Mismatch(
            wrong.get(out, f"{label}: returned {out}, expected {expected}"), specific=out in wrong
        )

    return Case(label, run)


@exercise("max_usable_length", NOTEBOOK, OFF_LIMITS)
def max_usable_length_cases() -> list[Case]:
    return [
        _length_case("GPT-2-like table (1024 × 48)", 1024, 48, None),
        _length_case("BERT-like table (512 × 32)", 512, 32, 0),
        _length_case("OPT-like table (2050 × 16), offset 2", 2050, 16, 2),
        _length_case("small table (7 × 3), offset 2", 7, 3, 2),
        _length_case("wide table (10 × 64), offset 1", 10, 64, 1),
    ]
