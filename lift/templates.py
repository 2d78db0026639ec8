"""The LiFT instruction templates: what the critic asks the model, and how answers read.

The templates live in a TOML file (default: ``templates.toml`` beside this
module, shipped as package data) so that a user can match the wording a checkpoint was trained with
without touching code. Presets for published checkpoints live in ``lift/presets/`` and are
chosen by name (``--templates lift-13b``); a path to a user's own file works the same way. The same file is used in reverse by the HRA tools: a
LiFT-HRA human turn ``"<video>\\n<caption> <question>"`` is split back into the
dimension and the caption.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lift.critique import ASSESSED_LABELS, Dimension, Label

DEFAULT_TEMPLATES = Path(__file__).with_name("templates.toml")
PRESETS = Path(__file__).with_name("presets")
VIDEO_MARKER = "<video>"
MESSAGE = "{message}"


class TemplateError(ValueError):
    """The template file is missing a piece or has a malformed one."""


@dataclass(frozen=True)
class Conversation:
    """A plain-text conversation format (LLaVA style: vicuna_v1, hermes-2, ...).

    The prompt is ``prompt`` with ``{message}`` replaced by the user's turn (the
    video placeholders and the question); the model's answer follows it after
    ``answer_lead`` and ends with ``stop``. Checkpoints without a chat template
    in their tokenizer (VILA) are prompted this way.
    """

    name: str
    prompt: str
    answer_lead: str = ""
    stop: str = ""

    def render(self, message: str) -> str:
        """The prompt text for one user turn, up to where the answer starts."""
        return self.prompt.replace(MESSAGE, message)


@dataclass(frozen=True)
class Templates:
    """Questions per dimension, label words and the answer layout."""

    questions: dict[Dimension, str]
    labels: dict[Label, str]
    """Label -> the word the model answers with ("Good", ...)."""
    layout: str = "{prompt} {question}"
    separator: str = ". "
    system: str = ""
    source: str = "built-in"
    conversation: Conversation | None = None
    """Plain-text conversation format; None: the tokenizer's chat template."""
    answer_keys: dict[Dimension, str] | None = None
    """Dimension -> the key a checkpoint's reference scripts file its answer under
    (LiFT: "semantic consistency", "fidelity issues", "motion issues")."""
    rating: Rating | None = None
    """A numeric-rating template ([rating] table; the ``rating`` protocol); then
    ``questions`` and ``labels`` are empty."""

    def dimension_for_key(self, key: str) -> Dimension | None:
        """The dimension whose answer key (or own name) is ``key``, else None."""
        wanted = key.strip().lower()
        for dim in Dimension:
            own = (self.answer_keys or {}).get(dim)
            if wanted in (dim.value, (own or "").lower()):
                return dim
        return None

    def question(self, dimension: Dimension, prompt: str) -> str:
        """The user's text for ``dimension`` about a video generated from ``prompt``."""
        return self.layout.format(prompt=prompt, question=self.questions[dimension])

    def answer_prefix(self, label: Label) -> str:
        """What an answer with ``label`` starts with, up to the reason."""
        return self.labels[label] + self.separator

    def parse_answer(self, text: str) -> tuple[Label, str]:
        """Split ``"<Label><separator><reason>"``; raise ValueError when it does not parse."""
        stripped = text.strip()
        for label in ASSESSED_LABELS:
            word = self.labels[label]
            if stripped.lower().startswith(word.lower()):
                rest = stripped[len(word) :]
                sep = self.separator.strip()
                if sep and rest.startswith(sep):
                    rest = rest[len(sep) :]
                elif rest and rest[0].isalnum():
                    continue  # "Goodness..." is not the label "Good"
                return label, rest.strip()
        words = ", ".join(self.labels[lab] for lab in ASSESSED_LABELS)
        raise ValueError(f"the answer does not start with one of {words}: {text[:60]!r}")

    def parse_question(self, text: str) -> tuple[Dimension, str] | None:
        """(dimension, caption) of a human turn built with these templates, or None."""
        body = text.replace(VIDEO_MARKER, "", 1).strip()
        for dim, q in self.questions.items():
            pattern = re.escape(self.layout).replace(re.escape("{prompt}"), "(?P<prompt>.+?)")
            pattern = pattern.replace(re.escape("{question}"), re.escape(q))
            m = re.fullmatch(pattern, body, flags=re.DOTALL)
            if m:
                return dim, m.group("prompt").strip()
        return None


SLOT = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


@dataclass(frozen=True)
class Rating:
    """A numeric-rating template: one question, an answer of score slots, a rationale after.

    The answer reads ``texts[0] <score> texts[1] <score> ... texts[-1]``: ``slots[i]``
    names the score between ``texts[i]`` and ``texts[i + 1]``; each score is one digit
    token in ``minimum..maximum``. ``dimensions`` maps a slot to the LiFT dimension it
    rates (slots not mapped are answered but not reported). Digits ``>= good_from``
    count as Good, ``<= bad_to`` as Bad, those between as Normal.
    """

    prompt: str
    """The user's text; ``{prompt}`` is replaced by the video's caption."""
    texts: tuple[str, ...]
    slots: tuple[str, ...]
    dimensions: dict[str, Dimension]
    minimum: int
    maximum: int
    good_from: int
    bad_to: int
    name: str = "custom"
    pairwise: RatingPairwise | None = None
    """A native pairwise question ([rating.pairwise]); None: pairs are derived from scores."""

    def question(self, prompt: str) -> str:
        """The user's text about a video generated from ``prompt``."""
        return self.prompt.replace("{prompt}", prompt)

    def answer(self, scores: dict[str, int]) -> str:
        """The answer text with each slot's score filled in."""
        parts = [self.texts[0]]
        for slot, text in zip(self.slots, self.texts[1:], strict=True):
            parts += [str(scores[slot]), text]
        return "".join(parts)


PAIR_SLOTS = ("{video_a}", "{video_b}")
"""Where the two videos of a pairwise question sit in its user turn."""
PAIR_ANSWERS = ("a", "b", "tie")


@dataclass(frozen=True)
class RatingPairwise:
    """A native pairwise question ([rating.pairwise]): one prompt holding both videos.

    ``prompt`` holds ``{prompt}`` (the caption) and the video slots ``{video_a}`` and
    ``{video_b}`` once each; ``answers`` are the texts the model answers with when the
    video in ``{video_a}`` is better, the one in ``{video_b}`` is, or neither ("a", "b",
    "tie").
    """

    prompt: str
    answers: dict[str, str]

    def parts(self, prompt: str) -> list[str | int]:
        """The user turn as its pieces in order: text, or 0 / 1 for the a / b video slot."""
        out: list[str | int] = []
        for piece in re.split(r"(\{video_[ab]\})", self.prompt):
            if piece in PAIR_SLOTS:
                out.append(PAIR_SLOTS.index(piece))
            elif piece:
                out.append(piece.replace("{prompt}", prompt))
        return out


def _pairwise(raw: object, where: str) -> RatingPairwise | None:
    """Parse the optional [rating.pairwise] table."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: [rating.pairwise] must be a table")
    unknown = set(raw) - {"prompt", *PAIR_ANSWERS}
    if unknown:
        raise TemplateError(f"{where}: unknown keys in [rating.pairwise]: {sorted(unknown)}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or prompt.count("{prompt}") != 1:
        raise TemplateError(
            f"{where}: [rating.pairwise] prompt must contain {{prompt}} exactly once"
        )
    for slot in PAIR_SLOTS:
        if prompt.count(slot) != 1:
            raise TemplateError(
                f"{where}: [rating.pairwise] prompt must contain {slot} exactly once "
                "(where that video sits in the user turn)"
            )
    answers = {}
    for key in PAIR_ANSWERS:
        text = raw.get(key)
        if not isinstance(text, str) or not text.strip():
            raise TemplateError(
                f"{where}: [rating.pairwise] {key} must be the answer text meaning "
                + ("a tie" if key == "tie" else f"the {{video_{key}}} video is better")
            )
        answers[key] = text
    if len(set(answers.values())) != len(answers):
        raise TemplateError(
            f"{where}: [rating.pairwise] a, b and tie must be three different texts"
        )
    return RatingPairwise(prompt, answers)


def _int(raw: dict[str, object], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TemplateError(f"{where}: [rating] {key} must be a whole number")
    return value


def _rating(raw: object, where: str) -> Rating | None:
    """Parse the optional [rating] table (see lift/presets/videoscore2.toml for the format)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: [rating] must be a table")
    known = {"name", "prompt", "answer", "min", "max", "good_from", "bad_to", "dimensions"}
    known |= {"pairwise"}  # [rating.pairwise], see RatingPairwise
    unknown = set(raw) - known
    if unknown:
        raise TemplateError(f"{where}: unknown keys in [rating]: {sorted(unknown)}")
    for key in ("name", "prompt", "answer"):
        if not isinstance(raw.get(key, ""), str):
            raise TemplateError(f"{where}: [rating] {key} must be a string")
    prompt, answer = raw.get("prompt", ""), raw.get("answer", "")
    if not isinstance(prompt, str) or prompt.count("{prompt}") != 1:
        raise TemplateError(f"{where}: [rating] prompt must contain {{prompt}} exactly once")
    lo, hi = _int(raw, "min", where), _int(raw, "max", where)
    if not 0 <= lo < hi <= 9:
        raise TemplateError(
            f"{where}: [rating] min and max must satisfy 0 <= min < max <= 9 (scores are "
            f"read as one digit token each; got {lo}..{hi})"
        )
    good, bad = _int(raw, "good_from", where), _int(raw, "bad_to", where)
    if not lo <= bad < good <= hi:
        raise TemplateError(
            f"{where}: [rating] needs min <= bad_to < good_from <= max (got bad_to {bad}, "
            f"good_from {good} on {lo}..{hi})"
        )
    if not isinstance(answer, str):
        raise TemplateError(f"{where}: [rating] answer must be a string")
    pieces = SLOT.split(answer)
    texts, slots = tuple(pieces[0::2]), tuple(pieces[1::2])
    if not slots:
        raise TemplateError(
            f"{where}: [rating] answer needs at least one score slot such as {{visual_quality}}"
        )
    if len(set(slots)) != len(slots):
        raise TemplateError(f"{where}: [rating] answer names a slot twice: {list(slots)}")
    if any(not t for t in texts[1:-1]):
        raise TemplateError(f"{where}: [rating] answer: two score slots need text between them")
    if any(c in t for t in texts for c in "{}"):
        raise TemplateError(
            f"{where}: [rating] answer: slots are {{lowercase_name}}; a stray brace is left"
        )
    dims_raw = raw.get("dimensions")
    if not isinstance(dims_raw, dict) or not dims_raw:
        raise TemplateError(f"{where}: [rating.dimensions] must map answer slots to dimensions")
    dimensions: dict[str, Dimension] = {}
    for slot, name in dims_raw.items():
        if slot not in slots:
            raise TemplateError(
                f"{where}: [rating.dimensions] {slot!r} is not a slot of the answer "
                f"(slots: {', '.join(slots)})"
            )
        try:
            dimensions[slot] = Dimension(name)
        except ValueError:
            names = ", ".join(d.value for d in Dimension)
            raise TemplateError(
                f"{where}: [rating.dimensions] {slot} = {name!r} is not a dimension ({names})"
            ) from None
    if len(set(dimensions.values())) != len(dimensions):
        raise TemplateError(f"{where}: [rating.dimensions] maps two slots to one dimension")
    name = raw.get("name", "") or "custom"
    assert isinstance(name, str)
    pairwise = _pairwise(raw.get("pairwise"), where)
    return Rating(prompt, texts, slots, dimensions, lo, hi, good, bad, name, pairwise)


def preset_names() -> list[str]:
    """The names ``--templates`` accepts besides a path."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def resolve_templates(value: str | Path | None) -> Path:
    """A preset name (``lift-13b``) or a path -> the template file's path.

    A value naming an existing file is that file; a bare name (no ``/``, no
    ``.toml``) is a preset, and an unknown one is an error listing the presets.
    """
    if value is None or str(value) == "":
        return DEFAULT_TEMPLATES
    text = str(value)
    path = Path(text)
    if path.is_file() or "/" in text or text.endswith(".toml"):
        return path
    preset = PRESETS / f"{text}.toml"
    if not preset.is_file():
        raise TemplateError(
            f"no template preset named {text!r} (presets: {', '.join(preset_names())}); "
            "or give the path of a template file"
        )
    return preset


def _conversation(raw: object, where: str) -> Conversation | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: [conversation] must be a table")
    fields = {}
    for key in ("name", "prompt", "answer_lead", "stop"):
        value = raw.get(key, "")
        if not isinstance(value, str):
            raise TemplateError(f"{where}: [conversation] {key} must be a string")
        fields[key] = value
    unknown = set(raw) - set(fields)
    if unknown:
        raise TemplateError(f"{where}: unknown keys in [conversation]: {sorted(unknown)}")
    if fields["prompt"].count(MESSAGE) != 1:
        raise TemplateError(f"{where}: [conversation] prompt must contain {MESSAGE} exactly once")
    return Conversation(
        fields["name"] or "custom", fields["prompt"], fields["answer_lead"], fields["stop"]
    )


def _answer_keys(raw: object, where: str) -> dict[Dimension, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TemplateError(f"{where}: [answer_keys] must be a table")
    keys: dict[Dimension, str] = {}
    for name, value in raw.items():
        try:
            dim = Dimension(name)
        except ValueError:
            raise TemplateError(f"{where}: unknown dimension {name!r} in [answer_keys]") from None
        if not isinstance(value, str) or not value.strip():
            raise TemplateError(f"{where}: [answer_keys] {name} must be a non-empty string")
        keys[dim] = value.strip()
    return keys


def load_templates(path: str | Path | None = None) -> Templates:
    """Read a template file or preset (default: the built-in LiFT templates)."""
    path = resolve_templates(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read the template file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{path} is not valid TOML: {exc}") from None
    where = f"template file {path}"
    rating = _rating(raw.get("rating"), where)
    if rating is not None:
        return _rating_templates(raw, rating, path, where)
    questions_raw = raw.get("questions")
    labels_raw = raw.get("labels")
    if not isinstance(questions_raw, dict) or not isinstance(labels_raw, dict):
        raise TemplateError(f"{where} needs a [questions] and a [labels] table")
    questions: dict[Dimension, str] = {}
    for dim in Dimension:
        q = questions_raw.get(dim.value)
        if not isinstance(q, str) or not q.strip():
            raise TemplateError(f"{where}: [questions] needs a non-empty {dim.value} string")
        questions[dim] = q.strip()
    unknown = set(questions_raw) - {d.value for d in Dimension}
    if unknown:
        raise TemplateError(f"{where}: unknown dimensions in [questions]: {sorted(unknown)}")
    labels: dict[Label, str] = {}
    for label in ASSESSED_LABELS:
        word = labels_raw.get(label.value)
        if not isinstance(word, str) or not word.strip():
            raise TemplateError(f"{where}: [labels] needs a non-empty {label.value} string")
        labels[label] = word.strip()
    if len({w.lower() for w in labels.values()}) != 3:
        raise TemplateError(f"{where}: the three label words must differ")
    layout = raw.get("layout", "{prompt} {question}")
    if not isinstance(layout, str) or "{prompt}" not in layout or "{question}" not in layout:
        raise TemplateError(f"{where}: layout must contain {{prompt}} and {{question}}")
    separator = raw.get("separator", ". ")
    system = raw.get("system", "")
    if not isinstance(separator, str) or not separator.strip():
        raise TemplateError(f"{where}: separator must be a non-blank string such as '. '")
    if not isinstance(system, str):
        raise TemplateError(f"{where}: system must be a string")
    conversation = _conversation(raw.get("conversation"), where)
    if conversation is not None and system.strip():
        raise TemplateError(
            f"{where}: with a [conversation], put the system text into its prompt "
            "(system applies to chat templates only)"
        )
    source = path.stem if path.parent == PRESETS else str(path)
    return Templates(
        questions,
        labels,
        layout,
        separator,
        system.strip(),
        source,
        conversation,
        _answer_keys(raw.get("answer_keys"), where),
    )


def _rating_templates(raw: dict[str, object], rating: Rating, path: Path, where: str) -> Templates:
    """A rating template file: [rating] plus an optional system text, nothing else."""
    unknown = set(raw) - {"rating", "system"}
    if unknown:
        raise TemplateError(
            f"{where}: a [rating] template holds only [rating] and system; remove {sorted(unknown)}"
        )
    system = raw.get("system", "")
    if not isinstance(system, str):
        raise TemplateError(f"{where}: system must be a string")
    source = path.stem if path.parent == PRESETS else str(path)
    return Templates({}, {}, system=system.strip(), source=source, rating=rating)
