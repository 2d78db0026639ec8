"""Prompt suites built as the LiFT paper built them: categories combined, then expanded.

The paper's prompts combine a subject (people, animals, vehicles, objects), an action that fits
it, a scene and a time of day / weather into a short prompt, and expand each short prompt into a
detailed description (camera move, style, a detail that fits the subject) for the generator.
The lists and templates are data (`categories.toml` next to this module, or a user's file with
the same layout), so a suite can be rebuilt from other lists without touching code.

Determinism is the contract: the same data, `n` and `seed` give the same suite, byte for byte,
on any machine. Everything random goes through one `random.Random(seed)`, lists keep their file
order, and kinds are iterated sorted, so nothing depends on set or dict ordering or on hashing.
Pure Python (no torch): `lift prompts make` must be instant.
"""

from __future__ import annotations

import json
import random
import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BUILTIN",
    "MAX_N",
    "Categories",
    "Prompt",
    "PromptDataError",
    "load_categories",
    "make_prompts",
    "max_prompts",
    "to_jsonl",
]

BUILTIN = Path(__file__).with_name("categories.toml")
MAX_N = 100_000

# Lists shared by every subject kind, and the per-kind tables keyed like `subjects`.
SHARED_LISTS = ("scenes", "times", "cameras", "styles")
KIND_TABLES = ("subjects", "actions", "details")
# Placeholder -> the list its value is drawn from.
PLACEHOLDERS = {
    "subject": "subjects",
    "action": "actions",
    "scene": "scenes",
    "time": "times",
    "camera": "cameras",
    "style": "styles",
    "detail": "details",
}
SHORT_REQUIRED = ("subject", "action")
# A detailed description names every category of its prompt; {detail} is flavour, optional.
DETAILED_REQUIRED = ("subject", "action", "scene", "time", "camera", "style")
_TOP_KEYS = (*SHARED_LISTS, *KIND_TABLES, "templates")


class PromptDataError(ValueError):
    """A categories file that cannot build prompts; the message names the key and the fix."""


@dataclass(frozen=True)
class Categories:
    """Validated category lists and templates (lists in file order, kinds sorted)."""

    kinds: tuple[str, ...]
    subjects: dict[str, tuple[str, ...]]
    actions: dict[str, tuple[str, ...]]
    details: dict[str, tuple[str, ...]]
    scenes: tuple[str, ...]
    times: tuple[str, ...]
    cameras: tuple[str, ...]
    styles: tuple[str, ...]
    short: str
    detailed: tuple[str, ...]
    source: str

    def shared(self, name: str) -> tuple[str, ...]:
        """One of the lists every kind shares (scenes, times, cameras, styles)."""
        return {
            "scenes": self.scenes,
            "times": self.times,
            "cameras": self.cameras,
            "styles": self.styles,
        }[name]


@dataclass(frozen=True)
class Prompt:
    """One prompt of a suite: the short prompt, its expansion and the categories it combines."""

    id: str
    prompt: str
    detailed: str
    categories: dict[str, str]

    def to_json(self) -> str:
        """One JSON line (keys in a fixed order, UTF-8 text kept as is)."""
        return json.dumps(
            {
                "id": self.id,
                "prompt": self.prompt,
                "detailed": self.detailed,
                "categories": self.categories,
            },
            ensure_ascii=False,
        )


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """Line (1-based) where `key` is set, inside `[table]` if given; None if not found.

    tomllib keeps no positions, and an error that says where to look saves the user a search.
    """
    current: str | None = None
    key_re = re.compile(rf"^\s*(\"{re.escape(key)}\"|{re.escape(key)})\s*=")
    for no, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]\s*(#.*)?$", line)
        if header:
            current = header.group(1)
            continue
        if current == table and key_re.match(line):
            return no
    if table is not None:  # the whole table is missing its key: point at the table
        for no, line in enumerate(text.splitlines(), 1):
            if re.match(rf"^\s*\[\s*{re.escape(table)}\s*\]", line):
                return no
    return None


class _Checker:
    """Collects the context (file, text) an error message needs."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text

    def fail(self, table: str | None, key: str | None, problem: str) -> PromptDataError:
        where = self.source
        if key is not None:
            line = _line_of(self.text, table, key)
        else:
            line = _header_line(self.text, table) if table is not None else None
        if line is not None:
            where += f":{line}"
        name = ".".join(p for p in (table, key) if p)
        return PromptDataError(f"{where}: {name}: {problem}")

    def strings(self, table: str | None, key: str, value: Any) -> tuple[str, ...]:
        """A non-empty list of distinct, non-empty strings, in file order."""
        if not isinstance(value, list):
            raise self.fail(table, key, f"must be a list of strings, got {type(value).__name__}")
        if not value:
            raise self.fail(table, key, "is empty; give at least one entry")
        seen: set[str] = set()
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(
                    table,
                    key,
                    f"entry {i + 1} is {type(item).__name__} {item!r}; every entry must be a quoted string",
                )
            if not item.strip():
                raise self.fail(table, key, f"entry {i + 1} is blank; remove it or fill it in")
            if item in seen:
                raise self.fail(
                    table, key, f"entry {i + 1} {item!r} is listed twice; remove the duplicate"
                )
            seen.add(item)
            out.append(item)
        return tuple(out)

    def template(self, key: str, tpl: str, required: tuple[str, ...]) -> str:
        try:
            parsed = list(string.Formatter().parse(tpl))
        except ValueError as exc:
            raise self.fail(
                "templates", key, f"{exc} in {tpl!r}; write a literal brace as {{{{ or }}}}"
            ) from None
        for _, field, spec, conv in parsed:
            if field is None:
                continue
            if field not in PLACEHOLDERS or spec or conv:
                shown = (
                    "{" + field + ("!" + conv if conv else "") + (":" + spec if spec else "") + "}"
                )
                raise self.fail(
                    "templates",
                    key,
                    f"unknown placeholder {shown} in {tpl!r}; use only "
                    + " ".join("{" + p + "}" for p in PLACEHOLDERS),
                )
        fields = {f for _, f, _, _ in parsed if f is not None}
        missing = [p for p in required if p not in fields]
        if missing:
            raise self.fail(
                "templates",
                key,
                f"{tpl!r} does not use " + ", ".join("{" + p + "}" for p in missing) + "; add it",
            )
        return tpl


def _header_line(text: str, table: str) -> int | None:
    for no, line in enumerate(text.splitlines(), 1):
        if re.match(rf"^\s*\[\s*{re.escape(table)}\s*\]", line):
            return no
    return None


def load_categories(path: str | Path | None = None) -> Categories:
    """Read and validate a categories file (the built-in one when `path` is None).

    Every rule a suite relies on is checked here, so that `make_prompts` cannot fail half way:
    kinds agree across subjects/actions/details, lists are non-empty strings without duplicates
    (a duplicate would make two "distinct" prompts identical), and templates use only known
    placeholders and name every category.
    """
    file = Path(path) if path is not None else BUILTIN
    source = str(file)
    if not file.is_file():
        raise PromptDataError(
            f"{source}: no such file; give a TOML file laid out like {BUILTIN.name} (lift/prompts/)"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PromptDataError(f"{source}: not UTF-8 text ({exc}); save it as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PromptDataError(f"{source}: not valid TOML: {exc}; fix the syntax there") from None
    ck = _Checker(source, text)

    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ck.fail(
            None,
            unknown[0],
            "unknown key; the file has only " + ", ".join(_TOP_KEYS) + " (check the spelling)",
        )
    for name in _TOP_KEYS:
        if name not in raw:
            kind = "[" + name + "] table" if name in (*KIND_TABLES, "templates") else "list"
            raise PromptDataError(f"{source}: {name}: missing; add the {kind}")

    tables: dict[str, dict[str, tuple[str, ...]]] = {}
    for name in KIND_TABLES:
        table = raw[name]
        if not isinstance(table, dict):
            raise ck.fail(None, name, f"must be a table ([{name}] with one list per subject kind)")
        if not table:
            raise ck.fail(name, None, "has no kinds; add at least one, e.g. people = [...]")
        tables[name] = {k: ck.strings(name, k, table[k]) for k in sorted(table)}
    kinds = tuple(sorted(tables["subjects"]))
    for name in ("actions", "details"):
        missing = [k for k in kinds if k not in tables[name]]
        if missing:
            raise ck.fail(
                name,
                None,
                f"no list for subject kind {missing[0]!r}; add {missing[0]} = [...] to [{name}]",
            )
        extra = [k for k in tables[name] if k not in kinds]
        if extra:
            raise ck.fail(
                name,
                extra[0],
                f"kind {extra[0]!r} has no subjects; add it to [subjects] or remove it",
            )

    shared = {name: ck.strings(None, name, raw[name]) for name in SHARED_LISTS}

    tpl = raw["templates"]
    if not isinstance(tpl, dict):
        raise ck.fail(None, "templates", "must be a table ([templates] with short and detailed)")
    extra_tpl = sorted(set(tpl) - {"short", "detailed"})
    if extra_tpl:
        raise ck.fail(
            "templates", extra_tpl[0], "unknown key; [templates] has only short and detailed"
        )
    if "short" not in tpl:
        raise ck.fail("templates", None, 'short is missing; add short = "{subject} {action} ..."')
    if "detailed" not in tpl:
        raise ck.fail("templates", None, 'detailed is missing; add detailed = ["...", ...]')
    if not isinstance(tpl["short"], str):
        raise ck.fail("templates", "short", f"must be a string, got {type(tpl['short']).__name__}")
    short = ck.template("short", tpl["short"], SHORT_REQUIRED)
    detailed = tuple(
        ck.template("detailed", t, DETAILED_REQUIRED)
        for t in ck.strings("templates", "detailed", tpl["detailed"])
    )
    return Categories(
        kinds=kinds,
        subjects=tables["subjects"],
        actions=tables["actions"],
        details=tables["details"],
        scenes=shared["scenes"],
        times=shared["times"],
        cameras=shared["cameras"],
        styles=shared["styles"],
        short=short,
        detailed=detailed,
        source=source,
    )


def _short_shared(cats: Categories) -> tuple[str, ...]:
    """The shared lists the short prompt names: they, with subject and action, make it distinct."""
    used = {f for _, f, _, _ in string.Formatter().parse(cats.short) if f}
    return tuple(PLACEHOLDERS[p] for p in ("scene", "time", "camera", "style") if p in used)


def max_prompts(cats: Categories) -> int:
    """How many distinct short prompts the lists can make."""
    per_kind = sum(len(cats.subjects[k]) * len(cats.actions[k]) for k in cats.kinds)
    total = per_kind
    for name in _short_shared(cats):
        total *= len(cats.shared(name))
    return total


def _fill(tpl: str, values: dict[str, str]) -> str:
    text = tpl.format_map(values)
    return text[:1].upper() + text[1:]


def make_prompts(n: int, seed: int, cats: Categories | None = None) -> list[Prompt]:
    """`n` distinct prompts drawn from `cats` (built-in lists by default) with `seed`.

    Distinct means distinct short prompts: the combinations the short template names are
    numbered, and `n` numbers are drawn without replacement (uniform over combinations, so a
    kind with more subjects and actions gets proportionally more prompts). The lists the short
    prompt leaves out (camera, style, detail) and the detailed template are then drawn per
    prompt from the same generator.
    """
    if cats is None:
        cats = load_categories()
    if not 1 <= n <= MAX_N:
        raise ValueError(f"n must be between 1 and {MAX_N}, got {n}")
    limit = max_prompts(cats)
    if n > limit:
        raise ValueError(
            f"n = {n} is more than the {limit} distinct prompts the lists in {cats.source} can "
            f"make; ask for at most {limit} or add entries to the lists"
        )
    rng = random.Random(seed)
    short_shared = _short_shared(cats)
    radix = 1
    for name in short_shared:
        radix *= len(cats.shared(name))
    # Numbering: (kind, subject, action) pairs in sorted-kind, file order, then the shared lists.
    pairs = [(k, s, a) for k in cats.kinds for s in cats.subjects[k] for a in cats.actions[k]]
    out: list[Prompt] = []
    for i, index in enumerate(rng.sample(range(limit), n)):
        pair, rest = divmod(index, radix)
        kind, subject, action = pairs[pair]
        values = {"subject": subject, "action": action}
        for name in reversed(short_shared):
            rest, j = divmod(rest, len(cats.shared(name)))
            values[_singular(name)] = cats.shared(name)[j]
        for name in SHARED_LISTS:
            if name not in short_shared:
                values[_singular(name)] = rng.choice(cats.shared(name))
        values["detail"] = rng.choice(cats.details[kind])
        detailed = _fill(rng.choice(cats.detailed), values)
        categories = {"kind": kind}
        categories.update({p: values[p] for p in DETAILED_REQUIRED})
        out.append(
            Prompt(
                id=f"p{i + 1:06d}",
                prompt=_fill(cats.short, values),
                detailed=detailed,
                categories=categories,
            )
        )
    return out


def _singular(name: str) -> str:
    return {v: k for k, v in PLACEHOLDERS.items()}[name]


def to_jsonl(prompts: list[Prompt]) -> str:
    """The suite as JSON lines, each ending in a newline."""
    return "".join(p.to_json() + "\n" for p in prompts)
