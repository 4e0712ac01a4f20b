"""Graders for notebook 03 · Relative position: from Shaw et al. to T5 buckets."""

from __future__ import annotations

import math

import torch

from posenc.grading.core import (
    Case,
    Mismatch,
    Mistakes,
    allowed_error,
    call,
    exercise,
    expect_close,
    expect_tensor,
    randn,
)

NOTEBOOK = "03_relative_bias"
OFF_LIMITS = (
    "posenc.relative_bias.t5_relative_bucket",
    "posenc.relative_bias.relative_bias_matrix",
    "posenc.relative_bias.T5RelativeBias",
    "posenc.relative_shaw.shaw_relative_indices",
    "posenc.relative_shaw.shaw_attention_scores",
    "posenc.relative_shaw.shaw_relative_attention",
)


def relative_positions(q_len: int, k_len: int) -> torch.Tensor:
    """j − i for queries aligned to the end of the keys.  (q_len, k_len)"""
    return torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None] - (k_len - q_len)


def t5_bucket_range(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """(lowest, highest) correct bucket per offset, from float64 logs.

    Where log(r / e) / log(max_distance / e) · (n − e) is within rounding of an integer
    (e.g. r = 16 with the defaults: exactly 2), a float32 log may land on either side, so both
    floors are correct; elsewhere lowest == highest.
    """
    rel = rel.long()
    n = num_buckets // 2 if bidirectional else num_buckets
    upper = (rel > 0).long() * n if bidirectional else torch.zeros_like(rel)
    distance = rel.abs() if bidirectional else (-rel).clamp(min=0)
    exact = n // 2
    raw = torch.log(distance.clamp(min=1).double() / exact) / math.log(max_distance / exact)
    raw = raw * (n - exact)
    slack = allowed_error(1 + raw.abs())
    ends = []
    for shifted in (raw - slack, raw + slack):
        large = (exact + shifted.floor().long()).clamp(max=n - 1)
        ends.append(upper + torch.where(distance < exact, distance, large))
    return ends[0], ends[1]


def _bucket_variant(
    rel,
    bidirectional,
    num_buckets,
    max_distance,
    *,
    small="<",
    scale="log",
    cap=True,
    rounding="floor",
    future="zero",
):
    """T5 buckets with one knob turned: the models of classic mistakes."""
    rel = rel.long()
    n, buckets = num_buckets, torch.zeros_like(rel)
    if bidirectional:
        n //= 2
        buckets = buckets + (rel > 0).long() * n
        distance = rel.abs()
    else:
        distance = rel.abs() if future == "abs" else (-rel).clamp(min=0)
    max_exact = (num_buckets if small == "unhalved" else n) // 2
    first_log = max_exact + (1 if small == "<=" else 0)  # "<=": exact range one too long
    is_small = distance < first_log
    d = distance.clamp(min=1).double()
    if scale == "log":
        frac = torch.log(d / max_exact) / math.log(max_distance / max_exact)
    else:
        frac = (d - max_exact) / (max_distance - max_exact)
    raw = frac * (n - first_log)
    large = first_log + (raw.round() if rounding == "round" else raw.floor()).long()
    if cap:
        large = large.clamp(max=n - 1)
    return buckets + torch.where(is_small, distance, large)


def _bucket_mistakes(rel, bidirectional, num_buckets, max_distance) -> Mistakes:
    args = (rel, bidirectional, num_buckets, max_distance)
    m = {
        "bidirectional and unidirectional confused: with bidirectional=True, keys after the "
        "query get their own half of the buckets": lambda: _bucket_variant(
            rel, not bidirectional, num_buckets, max_distance
        ),
        "linear buckets past the exact range; T5 spaces them on a log scale up to "
        "max_distance": lambda: _bucket_variant(*args, scale="linear"),
        "off by one at the exact/log boundary: distances < num_buckets/2 (of the half in use) "
        "are exact, the boundary itself is the first log bucket": lambda: _bucket_variant(
            *args, small="<="
        ),
        "exact range taken from num_buckets before halving it; in bidirectional mode the "
        "exact range is half of *each* half": lambda: _bucket_variant(*args, small="unhalved"),
        "offset sign flipped: relative_position is key − query (j − i), positive for keys "
        "after the query": lambda: _bucket_variant(-rel, bidirectional, num_buckets, max_distance),
        "distances beyond max_distance must share the last bucket (cap at num_buckets − 1 of "
        "the half)": lambda: _bucket_variant(*args, cap=False),
        "log bucket rounded; T5 truncates toward zero (.long() / floor)": lambda: _bucket_variant(
            *args, rounding="round"
        ),
    }
    if not bidirectional:
        m["unidirectional: keys after the query (j − i > 0) all go to bucket 0, not by |j − i|"] = (
            lambda: _bucket_variant(*args, future="abs")
        )
    return Mistakes(m)


def _bucket_case(
    label, rel, bidirectional=True, num_buckets=32, max_distance=128, defaults=False
) -> Case:
    def run(fn):
        if defaults:
            out = call(fn, rel)
        else:
            out = call(
                fn,
                rel,
                bidirectional=bidirectional,
                num_buckets=num_buckets,
                max_distance=max_distance,
            )
        low, high = t5_bucket_range(rel, bidirectional, num_buckets, max_distance)
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            raise Mismatch(
                f"{label}: returned floats; bucket indices are integers (long)", specific=True
            )
        if isinstance(out, torch.Tensor) and out.shape == low.shape:
            if bool(((out >= low) & (out <= high)).all()):
                return
        mistakes = _bucket_mistakes(rel, bidirectional, num_buckets, max_distance)
        expect_tensor(out, low, label, mistakes, atol=0, rtol=0, check_dtype=False)

    return Case(label, run)


@exercise("t5_relative_bucket", NOTEBOOK, OFF_LIMITS)
def t5_relative_bucket_cases() -> list[Case]:
    wide = torch.arange(-300, 301)
    return [
        _bucket_case("offsets −300 … 300, defaults (bidirectional, 32, 128)", wide, defaults=True),
        _bucket_case("offsets −300 … 300, unidirectional", wide, False),
        _bucket_case("16 buckets, max_distance 64", wide, True, 16, 64),
        _bucket_case(
            "unidirectional, 64 buckets, max_distance 256", torch.arange(-1000, 50), False, 64, 256
        ),
        _bucket_case("a (20, 20) matrix of offsets", relative_positions(20, 20)),
        _bucket_case(
            "far offsets (±10⁴) with 8 buckets, max_distance 20",
            torch.tensor([-10_000, -21, -20, -19, -3, -2, 0, 2, 3, 19, 20, 10_000]),
            True,
            8,
            20,
        ),
    ]


# --- relative_bias_matrix -----------------------------------------------------------------


def _matrix_mistakes(table, q_len, k_len, bidirectional, max_distance) -> Mistakes:
    def with_offsets(rel, bidi=bidirectional):
        b = _bucket_variant(rel, bidi, table.shape[0], max_distance)
        return table.double()[b].permute(2, 0, 1)

    top_left = torch.arange(k_len)[None, :] - torch.arange(q_len)[:, None]
    return Mistakes(
        {
            "offsets computed as query − key; T5 uses key − query (j − i)": lambda: with_offsets(
                -relative_positions(q_len, k_len)
            ),
            "queries aligned to the start of the keys; with q_len < k_len (a cache) the queries "
            "are the last q_len positions": lambda: with_offsets(top_left),
            "bidirectional flag not passed on to the buckets": lambda: with_offsets(
                relative_positions(q_len, k_len), not bidirectional
            ),
        }
    )


def _matrix_case(label, seed, buckets, heads, q_len, k_len, bidirectional, max_distance) -> Case:
    def run(fn):
        table = randn(buckets, heads, seed=seed)
        out = call(fn, table, q_len, k_len, bidirectional=bidirectional, max_distance=max_distance)
        low, high = t5_bucket_range(
            relative_positions(q_len, k_len), bidirectional, buckets, max_distance
        )
        truth_low = table.double()[low].permute(2, 0, 1)  # (heads, q_len, k_len)
        truth_high = table.double()[high].permute(2, 0, 1)
        if isinstance(out, torch.Tensor) and out.shape == (q_len, k_len, heads) != truth_low.shape:
            raise Mismatch(
                f"{label}: shape (q_len, k_len, heads); put heads first: .permute(2, 0, 1)",
                specific=True,
            )
        mistakes = _matrix_mistakes(table, q_len, k_len, bidirectional, max_distance)
        allowed = allowed_error(table.abs().max().item())  # a gather: exact, or one rounding
        if isinstance(out, torch.Tensor) and out.shape == truth_low.shape:
            near_high = (out.double() - truth_high).abs() <= allowed
            truth_low = torch.where(near_high, truth_high, truth_low)  # either bucket is right
        expect_close(out, truth_low, label, allowed, mistakes)

    return Case(label, run)


@exercise("relative_bias_matrix", NOTEBOOK, OFF_LIMITS)
def relative_bias_matrix_cases() -> list[Case]:
    return [
        _matrix_case("32 buckets, 1 head, 10 × 10, bidirectional", 0, 32, 1, 10, 10, True, 128),
        _matrix_case(
            "32 buckets, 12 heads, 40 × 40, causal decoder", 1, 32, 12, 40, 40, False, 128
        ),
        _matrix_case(
            "16 buckets, 4 heads, 3 queries × 50 keys (cache)", 2, 16, 4, 3, 50, False, 64
        ),
        _matrix_case(
            "16 buckets, 2 heads, 1 query × 200 keys, bidirectional", 3, 16, 2, 1, 200, True, 32
        ),
        _matrix_case("8 buckets, 3 heads, 20 × 20, bidirectional", 4, 8, 3, 20, 20, True, 16),
    ]


# --- shaw_relative_attention --------------------------------------------------------------

CLIP_HINT = (
    "offsets farther than max_relative must share the edge rows: read row "
    "clip(j − i, −K, K) + K of each table"
)


def shaw_rows(q_len: int, k_len: int, max_relative: int) -> torch.Tensor:
    """clip(j − i, −K, K) + K for queries aligned to the end of the keys.  (q_len, k_len)"""
    rel = relative_positions(q_len, k_len)
    return rel.clamp(-max_relative, max_relative) + max_relative


def shaw64(q, k, v, table_k, table_v, rows, *, scale=True, value=True, score_scale=None):
    """Σ_j softmax_j(q_i·(k_j + a^K[rows_ij]) / √d) (v_j + a^V[rows_ij]) in float64, with a
    knob per classic mistake.  q: (..., q_len, d), rows: (q_len, k_len) -> (..., q_len, d)"""
    q, k, v, table_k, table_v = (t.double() for t in (q, k, v, table_k, table_v))
    root = math.sqrt(q.shape[-1]) if scale else 1.0
    a_k, a_v = table_k[rows], table_v[rows]  # (q_len, k_len, d)
    content = q @ k.transpose(-1, -2) / root  # (..., q_len, k_len)
    position = torch.einsum("...id,ijd->...ij", q, a_k) / (score_scale or root)
    weights = torch.softmax(content + position, dim=-1)
    out = weights @ v  # (..., q_len, d)
    return out + torch.einsum("...ij,ijd->...id", weights, a_v) if value else out


def _wrapped_rows(rows: torch.Tensor, size: int) -> torch.Tensor:
    """Rows as a tensor index reads them: −r wraps to size − r; beyond the table, an error."""
    if bool((rows >= size).any() or (rows < -size).any()):
        raise IndexError("out of range: this mistake cannot produce an output here")
    return rows % size


def _shaw_mistakes(q, k, v, table_k, table_v, max_relative) -> Mistakes:
    q_len, k_len, K = q.shape[-2], k.shape[-2], max_relative
    rel, size = relative_positions(q_len, k_len), 2 * max_relative + 1
    good = shaw_rows(q_len, k_len, K)
    tables = (table_k, table_v)

    def with_rows(rows):
        return lambda: shaw64(q, k, v, *tables, rows)

    return Mistakes(
        {
            f"no clipping: {CLIP_HINT}": lambda: shaw64(
                q, k, v, *tables, _wrapped_rows(rel + K, size)
            ),
            "offsets computed as i − j (query − key); Shaw's a_ij uses j − i (key − query)": (
                with_rows(-rel.clamp(-K, K) + K)
            ),
            "the value term is missing: z_i = Σ_j α_ij (v_j + a^V_ij), not Σ_j α_ij v_j": (
                lambda: shaw64(q, k, v, *tables, good, value=False)
            ),
            "scores not divided by √d: e_ij = q_i·(k_j + a^K_ij) / √d": lambda: shaw64(
                q, k, v, *tables, good, scale=False
            ),
            "only q·k divided by √d; the position term q_i·a^K_ij is divided by √d too": (
                lambda: shaw64(q, k, v, *tables, good, score_scale=1.0)
            ),
            "offsets clipped to [0, K]: keys before the query (negative j − i) need rows of "
            "their own; clip to [−K, K], then add K": with_rows(rel.clamp(0, K) + K),
            "offsets clipped to [0, K] and used as rows: clip to [−K, K], then add K": (
                with_rows(rel.clamp(0, K))
            ),
            "clipped offsets used as rows without adding K (negative rows wrap round to the "
            "end of the table): row = clip(j − i, −K, K) + K": lambda: shaw64(
                q, k, v, *tables, _wrapped_rows(rel.clamp(-K, K), size)
            ),
            "table_k and table_v swapped: a^K joins the keys in the scores, a^V the values": (
                lambda: shaw64(q, k, v, table_v, table_k, good)
            ),
        }
    )


def _shaw_allowed(q, k, v, table_k, table_v) -> float:
    """The attention rule (core.attention_allowed) with a^K added to the keys and a^V to the
    values: one more sum in the output."""
    big_q, big_k, big_v = (t.detach().double().abs().max().item() for t in (q, k, v))
    big_k += table_k.double().abs().max().item()
    big_v += table_v.double().abs().max().item()
    d, k_len = q.shape[-1], k.shape[-2]
    score = d * big_q * big_k / math.sqrt(d)
    return allowed_error(big_v * (2 + k_len + score))


def _shaw_case(label, seed, lead, q_len, k_len, d, max_relative) -> Case:
    def run(fn):
        q = randn(*lead, q_len, d, seed=seed)
        k, v = randn(*lead, k_len, d, seed=seed + 1), randn(*lead, k_len, d, seed=seed + 2)
        table_k = randn(2 * max_relative + 1, d, seed=seed + 3)
        table_v = randn(2 * max_relative + 1, d, seed=seed + 4)
        try:
            out = call(fn, q, k, v, table_k, table_v, max_relative)
        except Mismatch as err:
            if isinstance(err.__cause__, IndexError):
                raise Mismatch(f"{label}: {err}; {CLIP_HINT}", specific=True) from err
            raise
        rows = shaw_rows(q_len, k_len, max_relative)
        truth = shaw64(q, k, v, table_k, table_v, rows)
        allowed = _shaw_allowed(q, k, v, table_k, table_v)
        mistakes = _shaw_mistakes(q, k, v, table_k, table_v, max_relative)
        expect_close(out, truth, label, allowed, mistakes)

    return Case(label, run)


@exercise("shaw_relative_attention", NOTEBOOK, OFF_LIMITS)
def shaw_relative_attention_cases() -> list[Case]:
    return [
        _shaw_case("seq 6, d 4, K 2 (no batch, no heads)", 0, (), 6, 6, 4, 2),
        _shaw_case("batch 2, 3 heads, seq 9, d 8, K 3", 10, (2, 3), 9, 9, 8, 3),
        _shaw_case("12 heads, seq 16, d 16, K 4", 20, (12,), 16, 16, 16, 4),
        _shaw_case("4 heads, seq 7, d 8, K 16 (nothing clipped)", 30, (4,), 7, 7, 8, 16),
        _shaw_case("2 heads, 3 queries × 11 keys (cache), d 8, K 2", 40, (2,), 3, 11, 8, 2),
        _shaw_case("1 head, 1 query × 9 keys, d 4, K 1", 50, (1,), 1, 9, 4, 1),
    ]
