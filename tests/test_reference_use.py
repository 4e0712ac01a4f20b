"""No credit for the reference: a function that reaches the library's answer fails.

Detected by what runs (code objects that start, files that open), so an alias, a wrapper,
the grader's own truths, the solution notebook on disk and the reference's source text are
all caught; the graders' own computations and the notebook's given helpers are not.
"""

import functools
import importlib
import inspect
import json

import pytest
import torch
from conftest import SOLUTIONS
from solution_code import solution_namespace

from posenc.grading import EXERCISES, CheckFailed, check, run_cases
from posenc.grading.core import GRADE_LOG_ENV, REGISTRY, ReferenceWatch


def _resolve(dotted):
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def test_every_exercise_declares_off_limits_that_resolve():
    for name in EXERCISES:
        off_limits = REGISTRY[name].off_limits
        assert off_limits and all(isinstance(n, str) for n in off_limits), name
        for dotted in off_limits:
            assert callable(_resolve(dotted)), f"{name}: {dotted} does not resolve"


GRADER_ANSWERS = {  # answers named otherwise, or living only in a grader module
    "apply_rope_interleaved": "posenc.rope.apply_rope",  # with layout="interleaved"
    "rope_attention": "posenc.grading.nb04_rope.rope_attention_truth",
    "best_extrapolator": "posenc.grading.nb06_extrapolation.best_extrapolator_reference",
    "apply_partial_rope": "posenc.grading.nb10_modern.partial_rope64",  # float64 truth
}


def _answer_of(name):
    """The library's function that answers exercise ``name`` (drills: their source's)."""
    plain = name.removeprefix("drill_")
    if plain in GRADER_ANSWERS:
        return GRADER_ANSWERS[plain]
    return next(n for n in REGISTRY[name].off_limits if n.rsplit(".", 1)[-1] == plain)


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_the_reference_itself_earns_no_credit(name):
    dotted = _answer_of(name)
    result = run_cases(name, _resolve(dotted))
    assert not result.passed and result.n_passed == 0
    assert dotted.startswith(result.uses_reference)
    assert "the answer itself — write it yourself" in result.hint


def test_a_wrapper_around_the_dispatcher_is_named_in_the_line():
    from posenc.rope_scaling import rope_scaled_frequencies as stretch

    def yarn_frequencies(dim, base, factor, original_len):
        scaling = {"rope_type": "yarn", "factor": factor}
        return stretch(dim, base, {**scaling, "original_max_position_embeddings": original_len})

    result = run_cases("yarn_frequencies", yarn_frequencies)
    assert result.line() == (
        "✘ yarn_frequencies: your function calls posenc.rope_scaling.rope_scaled_frequencies, "
        "the answer itself — write it yourself"
    )


def test_aliases_partials_and_classes_are_caught():
    import posenc.sinusoidal as s

    alias = s.sinusoidal_encoding
    assert run_cases("drill_sinusoidal_encoding", alias).uses_reference
    assert run_cases("sinusoidal_encoding", functools.partial(alias, base=10000.0)).uses_reference

    def through_the_module(seq_len, dim, base=10000.0):
        scheme = s.SinusoidalPositionalEncoding(dim, base=base)
        return scheme.embed(torch.zeros(seq_len, dim), torch.arange(seq_len))

    assert run_cases("sinusoidal_encoding", through_the_module).uses_reference


def test_the_graders_own_truths_are_off_limits():
    from posenc.grading import nb04_rope

    def apply_rope(x, positions, base=10000.0):
        return nb04_rope.rope_truth(x, positions, base).to(x.dtype)

    result = run_cases("apply_rope", apply_rope)
    assert result.uses_reference == "posenc.grading.nb04_rope"


def test_reading_the_solution_notebook_is_caught():
    def apply_rope(x, positions, base=10000.0):
        return solution_namespace(SOLUTIONS / "04_rope.ipynb")["apply_rope"](x, positions, base)

    result = run_cases("apply_rope", apply_rope)
    assert result.uses_reference == "solutions/04_rope.ipynb"
    assert "reads solutions/04_rope.ipynb" in result.hint


def test_copying_the_reference_source_is_caught():
    import linecache

    import posenc.alibi

    def alibi_slopes(n):
        linecache.clearcache()  # inspect reads the file again
        namespace = {}
        exec(inspect.getsource(posenc.alibi), namespace)
        return namespace["alibi_slopes"](n)

    result = run_cases("alibi_slopes", alibi_slopes)
    assert result.uses_reference == "posenc.alibi.alibi_slopes"
    assert "reads the source of posenc.alibi" in result.hint


def test_a_given_helper_stays_allowed():
    from posenc.rope import rope_frequencies  # notebook 08 imports it; no 08 answer is it

    def linear_scaled_frequencies(dim, base=10000.0, factor=1.0):
        return rope_frequencies(dim, base, dtype=torch.float64).float() / factor

    assert run_cases("linear_scaled_frequencies", linear_scaled_frequencies).passed


def test_self_study_check_prints_the_line_raises_and_logs(tmp_path, monkeypatch, capsys):
    import posenc.grading.core as core
    from posenc.attention import self_attention

    log = tmp_path / "log.jsonl"
    monkeypatch.setattr(core, "_log_path", str(log))
    with pytest.raises(CheckFailed):
        check("self_attention", self_attention)
    out = capsys.readouterr().out
    assert out == (
        "✘ self_attention: your function calls posenc.attention.self_attention, the answer "
        "itself — write it yourself\n"
    )
    record = json.loads(log.read_text())
    assert record["uses_reference"] == "posenc.attention.self_attention"
    assert not record["passed"] and record["n_passed"] == 0
    assert GRADE_LOG_ENV  # the class grader sets this variable to collect the same records


def test_the_watch_ends_with_the_call_and_restores_the_profiler():
    import sys

    from posenc.rope import apply_rope

    watch = ReferenceWatch(REGISTRY["apply_rope"].off_limits)
    marker = []

    def outer_profiler(frame, event, arg):
        marker.append(event)

    sys.setprofile(outer_profiler)
    try:
        watch.guard(lambda: None)()
        restored = sys.getprofile()
    finally:
        sys.setprofile(None)
    assert restored is outer_profiler
    apply_rope(torch.zeros(1, 2), torch.arange(1))  # outside a guarded call: not recorded
    assert watch.hit == ""


def test_switching_off_the_watch_is_caught():
    import sys

    from posenc.relative_bias import t5_relative_bucket

    def sneaky(rel, bidirectional=True, num_buckets=32, max_distance=128):
        sys.setprofile(None)
        return t5_relative_bucket(
            rel, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
        )

    result = run_cases("t5_relative_bucket", sneaky)
    assert not result.passed and result.uses_reference == "sys.setprofile"
    assert "turns off the grader's watch" in result.hint


def test_the_watch_of_one_thread_never_flags_another():
    """Class grading runs several notebooks' cases at once, one per thread: each thread's
    watch is its own (a shared one flagged honest answers as turning the watch off)."""
    import threading

    import correct_variants_a as a

    from posenc.grading import run_cases

    results, barrier = [], threading.Barrier(3)

    def grade_repeatedly():
        barrier.wait()
        for _ in range(3):
            results.append(run_cases("sinusoidal_encoding", a.sinusoidal_d2l))

    threads = [threading.Thread(target=grade_repeatedly) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 9
    assert all(r.passed for r in results), {r.hint for r in results if not r.passed}
