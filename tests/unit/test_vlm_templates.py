"""The instruction template file: loading, answers, and reading questions back."""

from __future__ import annotations

from pathlib import Path

import pytest

from lift.critique import Dimension, Label
from lift.templates import (
    DEFAULT_TEMPLATES,
    TemplateError,
    load_templates,
)


def test_default_templates_have_a_question_per_dimension() -> None:
    t = load_templates()
    assert set(t.questions) == set(Dimension)
    assert [t.labels[lab] for lab in (Label.GOOD, Label.NORMAL, Label.BAD)] == [
        "Good",
        "Normal",
        "Bad",
    ]


@pytest.mark.parametrize("label", [Label.GOOD, Label.NORMAL, Label.BAD])
def test_answer_parses_after_each_label(label: Label) -> None:
    t = load_templates()
    text = t.answer_prefix(label) + "The dog runs out of frame at 2 s."
    assert t.parse_answer(text) == (label, "The dog runs out of frame at 2 s.")
    assert t.parse_answer(t.labels[label].lower() + ".  fine ") == (label, "fine")


@pytest.mark.parametrize("text", ["", "Excellent. nice", "Goodness me", "It is Good."])
def test_answers_without_a_label_do_not_parse(text: str) -> None:
    with pytest.raises(ValueError, match="does not start with"):
        load_templates().parse_answer(text)


@pytest.mark.parametrize("dim", list(Dimension))
def test_question_reads_back_into_dimension_and_caption(dim: Dimension) -> None:
    t = load_templates()
    caption = 'A cat in a "red" hat {jumps} over a fence.'
    assert t.parse_question("<video>\n" + t.question(dim, caption)) == (dim, caption)


def test_unrelated_question_does_not_match() -> None:
    assert load_templates().parse_question("<video>\nWhat is in the video?") is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace("video_fidelity = ", "video_fidel = "), "video_fidelity"),
        (lambda s: s.replace('normal = "Normal"', 'normal = "Good"'), "must differ"),
        (lambda s: s.replace('layout = "{prompt} {question}"', 'layout = "{question}"'), "layout"),
        (lambda s: s + "\n[[broken", "not valid TOML"),
    ],
)
def test_bad_template_files_name_the_problem(tmp_path: Path, edit, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(edit(DEFAULT_TEMPLATES.read_text()))
    with pytest.raises(TemplateError, match=message):
        load_templates(path)
