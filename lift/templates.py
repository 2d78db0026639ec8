"""The LiFT instruction templates: what the critic asks the model, and how answers read.

The templates live in a TOML file (default: ``templates.toml`` beside this
module, shipped as package data) so that a user can match the wording a checkpoint was trained with
without touching code. The same file is used in reverse by the HRA tools: a
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
VIDEO_MARKER = "<video>"


class TemplateError(ValueError):
    """The template file is missing a piece or has a malformed one."""


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


def load_templates(path: Path | None = None) -> Templates:
    """Read a template file (default: the built-in LiFT templates)."""
    path = path or DEFAULT_TEMPLATES
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TemplateError(f"cannot read the template file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{path} is not valid TOML: {exc}") from None
    where = f"template file {path}"
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
    return Templates(questions, labels, layout, separator, system.strip(), str(path))
