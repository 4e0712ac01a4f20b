"""The headline table: the shift-invariance test of a scheme's type, the verdict rules on
hand-made numbers, the table following results/, and README's copy equal to the generator's."""

import json
import shutil

import pytest
import torch
from conftest import ROOT

from posenc.attention import PositionScheme, causal_mask
from posenc.course.headline import (
    END,
    START,
    USED_BY_FILE,
    Spread,
    classify,
    context_note,
    efficiency_grade,
    efficiency_verdict,
    extrapolation_grades,
    headline_table,
    measured_type,
    position_gaps,
    ppl_cell,
    readme_with_table,
    verdict,
)

RESULTS = ROOT / "results"


# --- the type, measured: hand-made schemes whose type we know by construction --------------


class AddedPositions(PositionScheme):
    """x + sin(p·ω): an absolute code added to the input."""

    def embed(self, x, positions):
        omega = torch.linspace(0.1, 1.0, x.shape[-1], dtype=x.dtype)
        return x + torch.sin(positions[:, None].to(x.dtype) * omega)


class QueryOnlyRotation(PositionScheme):
    """A rotation of q alone by its position (RoPE's classic bug): the score sees i, not j − i."""

    def rotate(self, q, k, positions):
        angle = positions.to(q.dtype)[:, None]  # (seq, 1)
        q1, q2 = q.chunk(2, dim=-1)
        return torch.cat(
            [q1 * angle.cos() - q2 * angle.sin(), q1 * angle.sin() + q2 * angle.cos()], -1
        ), k


class OffsetBias(PositionScheme):
    """b(j − i) = sin(0.7 (j − i)) per head, computed from the positions given."""

    def bias(
        self, q_len, k_len, *, causal=False, offset=None, positions=None, key_padding_mask=None
    ):
        pos = torch.arange(k_len) if positions is None else positions
        offsets = (pos[None, :] - pos[:, None]).double()  # (q, k): j − i
        b = torch.sin(0.7 * offsets).expand(2, -1, -1)  # (heads, q, k)
        return b.masked_fill(~causal_mask(q_len), float("-inf")) if causal else b


@pytest.mark.parametrize(
    "scheme, expected",
    [
        (AddedPositions(), "absolute"),
        (QueryOnlyRotation(), "absolute"),
        (OffsetBias(), "relative"),
        (PositionScheme(), "none"),
    ],
)
def test_shift_invariance_classifies_hand_made_schemes(scheme, expected):
    assert classify(*position_gaps(scheme)) == expected


@pytest.mark.parametrize(
    "name, expected",
    [
        ("learned", "absolute"),
        ("sinusoidal", "absolute"),  # added to x: content × position cross terms
        ("t5", "relative"),
        ("rope", "relative"),  # absolute rotations, relative score
        ("alibi", "relative"),
        ("nope", "none"),
    ],
)
def test_library_schemes_have_their_textbook_type(name, expected):
    assert measured_type(name)[0] == expected


# --- the verdict rules on hand-made numbers -------------------------------------------------


def point(x):
    return Spread(x, None, x, x)


NOPE = point(10.0), point(14.0)  # NoPE: × 1.4 from L to 8L


def test_extrapolation_grades_follow_the_written_rule():
    assert extrapolation_grades(point(7.0), None, *NOPE) == {"poor"}  # cannot run past L
    assert extrapolation_grades(point(7.0), point(6.9), *NOPE) == {"excellent"}  # flat
    assert extrapolation_grades(point(7.0), Spread(7.1, 0.1, 6.9, 7.2), *NOPE) == {"excellent"}
    assert extrapolation_grades(point(7.0), point(8.4), *NOPE) == {"good"}  # × 1.2 < 1.4
    assert extrapolation_grades(point(7.0), point(12.6), *NOPE) == {"medium"}  # × 1.8, < 14
    assert extrapolation_grades(point(7.0), point(18.0), *NOPE) == {"poor"}  # above NoPE's 14
    tie = extrapolation_grades(point(7.0), Spread(9.8, 0.5, 9.0, 10.5), *NOPE)  # × 1.29 … 1.5
    assert tie == {"good", "medium"}


def test_verdicts():
    assert verdict("good", {"good"}) == "agrees"
    assert verdict("good", {"good", "medium"}) == "partly"
    assert verdict("good", {"poor"}) == "disagrees"
    assert verdict(None, {"poor"}) is None
    assert [efficiency_grade(r) for r in (1.0, 1.09, 1.5, 2.5)] == ["high", "high", "medium", "low"]
    assert efficiency_verdict("high", ["high", "high"]) == "agrees"
    assert efficiency_verdict("high", ["low", "high"]) == "partly"
    assert efficiency_verdict("medium", ["high"]) == "disagrees"


def test_ppl_cell_reads_the_spread_or_the_seeds():
    ext = {"ppl": {"a": {"32": 2.0, "64": None}}, "per_seed": {"a": {"32": [1.0, 3.0]}}}
    assert ppl_cell(ext, "a", 64) is None
    assert ppl_cell(ext, "a", 32) == Spread(2.0, 2**0.5, 1.0, 3.0)
    ext["ppl_spread"] = {"a": {"32": {"sd": 0.5, "min": 1.5, "max": 2.5}}}
    assert ppl_cell(ext, "a", 32) == Spread(2.0, 0.5, 1.5, 2.5)
    assert ppl_cell({"ppl": {"a": {"32": 2.0}}}, "a", 32) == point(2.0)


# --- the table, results/ and README ---------------------------------------------------------


def alibi_cell(table: str, column: int) -> str:
    row = next(line for line in table.splitlines() if line.startswith("| ALiBi"))
    return row.strip("| ").split(" | ")[column]


def test_headline_table_follows_the_results_files(tmp_path):
    for name in ("extrapolation_full.json", "bench_cpu.json", USED_BY_FILE):
        shutil.copy(RESULTS / name, tmp_path)
    before = headline_table(tmp_path)
    extrapolation = alibi_cell(before, column=2)
    assert "→ 极好 excellent (" in extrapolation and extrapolation.endswith("**agrees**")
    data = json.loads((tmp_path / "extrapolation_full.json").read_text())
    data["ppl"]["alibi"]["256"] = 123.456
    data.get("per_seed", {}).pop("alibi", None)
    data.get("ppl_spread", {}).pop("alibi", None)
    (tmp_path / "extrapolation_full.json").write_text(json.dumps(data))
    after = headline_table(tmp_path)
    extrapolation = alibi_cell(after, column=2)
    assert "→ 差 poor (" in extrapolation and "123.46 at 8L" in extrapolation
    assert extrapolation.endswith("**disagrees**")


def test_readme_table_is_the_generators_output():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = readme_with_table(readme, headline_table(RESULTS))
    assert readme == expected, "README's table is stale: python -m posenc.course.headline --readme"
    with pytest.raises(ValueError, match="no generated table"):
        readme_with_table(readme.replace(START, ""), "x")
    assert readme.count(END) == 1


def test_committed_used_by_matches_transformers():
    pytest.importorskip("transformers")
    from posenc.course.headline import used_by_evidence

    committed = json.loads((RESULTS / USED_BY_FILE).read_text(encoding="utf-8"))
    assert used_by_evidence() == committed["models"], "python -m posenc.course.headline --used-by"


def test_the_command_rewrites_readme_in_place(tmp_path, monkeypatch):
    from posenc.course.headline import main

    (tmp_path / "results").mkdir()
    for name in ("extrapolation_full.json", "bench_cpu.json", USED_BY_FILE):
        shutil.copy(RESULTS / name, tmp_path / "results")
    stale = f"intro\n{START}\n| old table |\n{END}\noutro\n"
    (tmp_path / "README.md").write_text(stale, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert main(["--readme"]) == 0
    fresh = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert fresh == f"intro\n{START}\n{headline_table(RESULTS)}\n{END}\noutro\n"
    with pytest.raises(SystemExit, match="unknown option"):
        main(["--readmee"])


def test_used_by_marks_each_model():
    from posenc.course.headline import CLAIMS, used_by_cell

    evidence = {"BLOOM": {"alibi": "build_alibi_tensor"}, "MPT": {"rope": "rotary"}}
    cell = used_by_cell(CLAIMS["alibi"], "alibi", evidence)
    assert "BLOOM ✓ `build_alibi_tensor`" in cell and "MPT ✗ `rotary`" in cell
    assert cell.endswith("**partly**")
    evidence["BLOOM"] = {}
    assert used_by_cell(CLAIMS["alibi"], "alibi", evidence).endswith("**disagrees**")


def test_position_evidence_finds_what_each_model_is_known_to_use():
    pytest.importorskip("transformers")
    from posenc.model_families import position_evidence

    known = {  # from the papers and model cards, not from our reading of the code
        ("BertConfig", "bert"): {"learned"},
        ("GPT2Config", "gpt2"): {"learned"},
        ("T5Config", "t5"): {"relative bias"},
        ("LlamaConfig", "llama"): {"rope"},
        ("FalconConfig", "falcon"): {"rope"},  # ALiBi only when its config flag says so
        ("BloomConfig", "bloom"): {"alibi"},
        ("MptConfig", "mpt"): {"alibi"},
        ("Llama4TextConfig", "llama4"): {"rope", "nope"},
    }
    for where, kinds in known.items():
        assert set(position_evidence(*where)) == kinds, where


def test_context_note_says_yes_only_when_every_seed_gains():
    def ext(lo, hi):
        gain = {"mean": (lo + hi) / 2, "sd": 0.1, "min": lo, "max": hi}
        return {"context_use": {"rows": {"alibi": {"gain": gain}}}}

    assert "gains from context beyond L: yes" in context_note(ext(0.01, 0.2), "alibi")
    assert "gains from context beyond L: no" in context_note(ext(-0.01, 0.2), "alibi")
    assert context_note(ext(0.01, 0.2), "rope") == ""
    assert context_note({}, "alibi") == ""
