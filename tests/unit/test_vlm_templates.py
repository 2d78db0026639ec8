"""The instruction template file: loading, answers, and reading questions back."""

from __future__ import annotations

import json
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


# -- presets: the paper's questions and conversation formats ---------------------------------

PAPER_QUESTIONS = {  # LiFT-Critic/test/run_critic_13b.py, question_list (each starts with a space)
    Dimension.SEMANTIC_CONSISTENCY: " Please identify the semantic consistency issues in this "
    "video, focusing on the alignment between the text and the visual content. Specifically, "
    "point out any discrepancies regarding the subject (e.g., person or animal), quantity, "
    "color, scene description, style, and other relevant aspects.",
    Dimension.VIDEO_FIDELITY: " Please identify the fidelity issues in this video, assessing "
    "the realism of the content, including people, animals, and other objects. Highlight any "
    "problems such as missing limbs, deformed hands or faces, or other unrealistic elements.",
    Dimension.MOTION_SMOOTHNESS: " Please identify the motion issues in this video, focusing on "
    "the continuity and smoothness of actions, as well as their coherence and adherence to the "
    "laws of physics.",
}


@pytest.mark.parametrize("preset", ["lift-13b", "lift-40b"])
def test_presets_ask_the_papers_questions_as_the_reference_joins_them(preset: str) -> None:
    t = load_templates(preset)
    assert t.source == preset
    for dim, question in PAPER_QUESTIONS.items():
        # the reference's user text is item['caption'] + question_list[i]
        assert t.question(dim, "A cat sleeps.") == "A cat sleeps." + question
    assert t.answer_keys == {
        Dimension.SEMANTIC_CONSISTENCY: "semantic consistency",
        Dimension.VIDEO_FIDELITY: "fidelity issues",
        Dimension.MOTION_SMOOTHNESS: "motion issues",
    }
    assert [t.labels[lab] for lab in (Label.GOOD, Label.NORMAL, Label.BAD)] == [
        "Good",
        "Normal",
        "Bad",
    ]


def test_preset_conversation_formats_render_as_llava_does() -> None:
    vicuna = load_templates("lift-13b").conversation
    hermes = load_templates("lift-40b").conversation
    assert vicuna is not None and hermes is not None
    assert (vicuna.name, hermes.name) == ("vicuna_v1", "hermes-2")
    system = (
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    )
    # conv_vicuna_v1 (sep_style TWO, sep " "): system + sep + "USER: " + msg + sep + "ASSISTANT:"
    assert vicuna.render("MSG") == system + " USER: MSG ASSISTANT:"
    assert (vicuna.answer_lead, vicuna.stop) == (" ", "</s>")
    # hermes_2 (sep_style MPT, sep "<|im_end|>"): system + sep + role + msg + sep + role
    assert hermes.render("MSG") == (
        "<|im_start|>system\nAnswer the questions.<|im_end|>"
        "<|im_start|>user\nMSG<|im_end|><|im_start|>assistant\n"
    )
    assert (hermes.answer_lead, hermes.stop) == ("", "<|im_end|>")


def test_preset_names_and_paths_resolve(tmp_path: Path) -> None:
    from lift.templates import DEFAULT_TEMPLATES, TemplateError, preset_names, resolve_templates

    assert {"lift-13b", "lift-40b"} <= set(preset_names())
    assert resolve_templates(None) == DEFAULT_TEMPLATES
    own = tmp_path / "mine.toml"
    own.write_text(DEFAULT_TEMPLATES.read_text())
    assert resolve_templates(str(own)) == own
    assert load_templates(own).source == str(own)
    with pytest.raises(TemplateError, match="lift-13b"):
        load_templates("lift-99b")  # an unknown preset lists the known ones
    with pytest.raises(TemplateError, match="cannot read"):
        load_templates(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[conversation]\nprompt = "no slot"\n', "exactly once"),
        ('[conversation]\nprompt = "{message}"\nfoo = "x"\n', "unknown keys"),
        ('[conversation]\nprompt = "{message}"\nstop = 3\n', "stop must be a string"),
        ('[answer_keys]\nsmell = "x"\n', "unknown dimension"),
        ('[answer_keys]\nmotion_smoothness = ""\n', "non-empty"),
        ('system = "be nice"\n[conversation]\nprompt = "{message}"\n', "into its prompt"),
    ],
)
def test_bad_conversation_and_answer_key_tables_name_the_problem(
    tmp_path: Path, table: str, message: str
) -> None:
    from lift.templates import DEFAULT_TEMPLATES, TemplateError

    base = DEFAULT_TEMPLATES.read_text().replace('system = ""\n', "")
    path = tmp_path / "t.toml"
    head = table.split("[", 1)[0]
    rest = table[len(head) :]
    path.write_text(head + base + "\n" + rest)
    with pytest.raises(TemplateError, match=message):
        load_templates(path)


def test_hra_records_may_name_the_dimension_by_the_papers_answer_key(tmp_path: Path) -> None:
    from lift.hra.records import read_hra

    t = load_templates("lift-13b")
    question = t.question(Dimension.MOTION_SMOOTHNESS, "A dog runs.")
    rows = [
        {
            "video": "v.mp4",
            "dimension": "motion issues",
            "conversations": [
                {"from": "human", "value": "<video>\n" + question},
                {"from": "gpt", "value": "Bad. The dog glides."},
            ],
        },
        {
            "video": "v.mp4",
            "dimension": "smell issues",
            "conversations": [
                {"from": "human", "value": "<video>\n" + question},
                {"from": "gpt", "value": "Good. Fine."},
            ],
        },
    ]
    path = tmp_path / "hra.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    records, errors = read_hra(path, t, check_videos=False)
    assert [(r.dimension, r.prompt, r.label) for r in records] == [
        (Dimension.MOTION_SMOOTHNESS, "A dog runs.", Label.BAD)
    ]
    assert len(errors) == 1 and "motion issues" in errors[0].message
