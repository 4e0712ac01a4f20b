"""Notebook 09: the bank's size and links, the quiz without a front end, and the drills'
graders (the generated table is tested in test_headline.py)."""

import shutil

import pytest
from conftest import SOLUTIONS
from grader_helpers import assert_rejected
from solution_code import solution_namespace

from posenc.course.interview import Quiz, broken_links, load_bank

NB = SOLUTIONS / "09_interview_drill.ipynb"


def test_bank_has_at_least_40_questions_in_every_group():
    bank = load_bank(NB)
    assert len(bank) >= 40
    topics = {q.topic for q in bank}
    assert {
        "Foundations",
        "Absolute encodings",
        "Relative encodings",
        "RoPE",
        "ALiBi",
        "Long context",
        "Efficiency",
        "Design questions",
    } <= topics
    assert all(q.answer for q in bank)


def test_every_answer_links_somewhere_and_every_link_resolves():
    bank = load_bank(NB)
    assert all(q.links for q in bank), [q.question for q in bank if not q.links]
    assert broken_links(bank, SOLUTIONS) == []


def test_broken_links_are_caught(tmp_path):
    nb_copy = tmp_path / "09_interview_drill.ipynb"
    text = NB.read_text().replace("04_rope.ipynb#Proofs-by-code", "04_rope.ipynb#No-such-part")
    nb_copy.write_text(text)
    for path in SOLUTIONS.glob("[01][0-9]_*.ipynb"):
        if path.name != nb_copy.name:  # every notebook the bank links to, but not 09 itself
            shutil.copy(path, tmp_path)
    problems = broken_links(load_bank(nb_copy), tmp_path)
    assert problems and all("No-such-part" in p for p in problems)


def test_quiz_without_a_front_end():
    bank = load_bank(NB)
    quiz = Quiz(bank, topic="ALiBi", seed=3)
    seen = {quiz.next_question().question for _ in range(5)}
    assert len(seen) == 5 and all(q.topic == "ALiBi" for q in bank if q.question in seen)
    assert quiz.reveal() == quiz.current.answer
    quiz.mark(True)
    quiz.next_question()
    quiz.mark(False)
    assert quiz.score() == "1/2 known"
    with pytest.raises(RuntimeError):
        quiz.mark(True)
    with pytest.raises(ValueError, match="topic"):
        Quiz(bank, topic="astrology").next_question()


def test_drills_use_the_course_graders():
    def naive_slopes(n):
        import torch

        return torch.tensor([2 ** (-8 * (h + 1) / n) for h in range(n)])

    assert_rejected("drill_alibi_slopes", naive_slopes, "not a power of two")
    ns = solution_namespace(NB)
    from grader_helpers import assert_accepted

    for name in (
        "sinusoidal_encoding",
        "apply_rope",
        "alibi_slopes",
        "t5_relative_bucket",
        "ntk_scaled_base",
    ):
        assert_accepted(f"drill_{name}", ns[name])
