"""Every plot draws a scheme in one colour and marker, whichever other rows it holds."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from posenc.experiments.extrapolation import ROWS, plot_position_loss, plot_results  # noqa: E402
from posenc.experiments.scaling_study import METHODS  # noqa: E402
from posenc.experiments.styles import STYLES, style  # noqa: E402

ALIASES = {("linear", "rope_pi"), ("ntk", "rope_ntk")}  # the same method under two names


def _fake_results(rows):
    lens = [4, 8]
    return {
        "train_len": 4,
        "eval_lens": lens,
        "machine": "test",
        "ppl": {r: {str(E): 2.0 + i for E in lens} for i, r in enumerate(rows)},
        "position_loss": {r: {"8": {"0-4": 1.0, "4-8": 1.5}} for r in rows},
    }


def test_every_row_and_method_has_a_style():
    assert set(ROWS) <= set(STYLES)
    assert {m for m in METHODS if m != "rope"} <= set(STYLES)


def test_no_two_names_look_alike_unless_they_are_one_method():
    looks = {}
    for name, kw in STYLES.items():
        look = (kw["color"], kw["marker"], kw["linestyle"])
        other = looks.setdefault(look, name)
        assert other == name or tuple(sorted((other, name))) in ALIASES, (other, name)


def test_a_row_keeps_its_colour_when_another_row_is_missing():
    def colours(rows, plot):
        fig = plot(_fake_results(rows))
        lines = fig.axes[0].get_lines()
        out = {ln.get_label(): ln.get_color() for ln in lines if ln.get_label()[0] != "_"}
        plt.close(fig)
        return out

    for plot in (plot_results, plot_position_loss):
        full = colours(list(ROWS), plot)
        fewer = colours([r for r in ROWS if r != "learned"], plot)
        assert all(fewer[r] == full[r] for r in fewer)
        assert full["alibi"] == STYLES["alibi"]["color"]


def test_an_unknown_name_is_refused_with_the_allowed_names():
    with pytest.raises(ValueError, match="name must be one of"):
        style("no-such-scheme")
