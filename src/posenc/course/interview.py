"""Notebook 09's machinery: the question bank read from the notebook itself, a quiz that works
with or without a front end. The headline table is in :mod:`posenc.course.headline`.

The bank's single source is notebook 09's Markdown: under each ``### Topic`` heading, every
``<details><summary>question</summary> answer </details>`` block is one question.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

DETAILS = re.compile(r"<details><summary>(.*?)</summary>(.*?)</details>", re.S)
LINK = re.compile(r"\]\(((?:[^()\s]|\([^()\s]*\))+)\)")  # allows one level of (…) inside


@dataclass(frozen=True)
class Question:
    topic: str
    question: str
    answer: str  # Markdown

    @property
    def links(self) -> list[str]:
        return LINK.findall(self.answer)


def load_bank(notebook: str | Path) -> list[Question]:
    """Every <details> question of the notebook, with the ``###`` heading it sits under."""
    nb = nbformat.read(Path(notebook), as_version=4)
    bank, topic = [], "general"
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        # Split the cell at its ### headings: each part's questions belong to its heading.
        for part in re.split(r"(?m)^(?=### )", cell.source):
            if part.startswith("### "):
                topic = part.splitlines()[0][4:].strip()
            for question, answer in DETAILS.findall(part):
                bank.append(Question(topic, question.strip(), answer.strip()))
    return bank


def heading_anchors(notebook: str | Path) -> set[str]:
    """JupyterLab's anchor for every Markdown heading: the heading text, spaces as '-'."""
    nb = nbformat.read(Path(notebook), as_version=4)
    anchors = set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                match = re.match(r"^#{1,6}\s+(.*)$", line)
                if match:
                    anchors.add(match.group(1).strip().replace(" ", "-"))
    return anchors


def broken_links(bank: list[Question], folder: str | Path) -> list[str]:
    """Links in answers whose notebook, heading or file does not exist (relative to folder)."""
    problems = []
    for q in bank:
        for link in q.links:
            if link.startswith("http"):
                continue
            path, _, anchor = link.partition("#")
            target = Path(folder) / path
            if not target.exists():
                problems.append(f"{q.question!r}: {link} (no such file)")
            elif anchor and anchor not in heading_anchors(target):
                problems.append(f"{q.question!r}: {link} (no such heading)")
    return problems


@dataclass
class Quiz:
    """A random walk through the bank: ask, reveal, mark known or unknown, keep a score."""

    bank: list[Question]
    topic: str | None = None
    seed: int = 0
    known: int = 0
    unknown: int = 0
    current: Question | None = None
    revealed: bool = False
    _order: list[Question] = field(default_factory=list)

    def topics(self) -> list[str]:
        return sorted({q.topic for q in self.bank})

    def next_question(self) -> Question:
        """The next question of the chosen topic (reshuffled when the topic runs out)."""
        pool = [q for q in self.bank if self.topic in (None, q.topic)]
        if not pool:
            raise ValueError(f"topic must be one of {self.topics()}, got {self.topic!r}")
        if not self._order:
            self._order = random.Random(self.seed + self.known + self.unknown).sample(
                pool, len(pool)
            )
        self.current, self.revealed = self._order.pop(), False
        return self.current

    def reveal(self) -> str:
        if self.current is None:
            raise RuntimeError("no question asked yet: call next_question() first")
        self.revealed = True
        return self.current.answer

    def mark(self, knew_it: bool) -> None:
        if self.current is None:
            raise RuntimeError("no question asked yet: call next_question() first")
        if knew_it:
            self.known += 1
        else:
            self.unknown += 1
        self.current = None

    def score(self) -> str:
        total = self.known + self.unknown
        return f"{self.known}/{total} known" if total else "no answers marked yet"


def quiz_widget(bank: list[Question], seed: int = 0):
    """Buttons around :class:`Quiz`: topic, next, reveal, knew it / did not."""
    import ipywidgets as widgets
    from IPython.display import Markdown, display

    quiz = Quiz(bank, seed=seed)
    topic = widgets.Dropdown(options=["all"] + quiz.topics(), description="topic")
    out = widgets.Output()
    score = widgets.Label(quiz.score())
    buttons = {
        name: widgets.Button(description=name)
        for name in ("next question", "reveal answer", "I knew it", "I did not")
    }

    def show(text):
        out.clear_output()
        with out:
            display(Markdown(text))

    def on_next(_):
        quiz.topic = None if topic.value == "all" else topic.value
        quiz._order = []
        q = quiz.next_question()
        show(f"**[{q.topic}]** {q.question}")

    def on_reveal(_):
        if quiz.current is not None:
            show(f"**{quiz.current.question}**\n\n{quiz.reveal()}")

    def on_mark(knew):
        def handler(_):
            if quiz.current is not None:
                quiz.mark(knew)
                score.value = quiz.score()

        return handler

    buttons["next question"].on_click(on_next)
    buttons["reveal answer"].on_click(on_reveal)
    buttons["I knew it"].on_click(on_mark(True))
    buttons["I did not"].on_click(on_mark(False))
    return widgets.VBox([widgets.HBox([topic, *buttons.values()]), score, out])
