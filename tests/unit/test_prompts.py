"""`lift prompts make`: category lists combined into distinct prompts, expanded by templates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lift.cli.main import app
from lift.prompts import (
    BUILTIN,
    PromptDataError,
    load_categories,
    make_prompts,
    max_prompts,
    to_jsonl,
)

SMALL = """\
scenes = ["in a park", "on a beach"]
times = ["at night"]
cameras = ["a slow pan"]
styles = ["cinematic"]

[subjects]
people = ["a chef"]
animals = ["a cat", "a dog"]

[actions]
people = ["cooking pasta"]
animals = ["sleeping"]

[details]
people = ["their hands visible"]
animals = ["its fur detailed"]

[templates]
short = "{subject} {action} {scene} {time}."
detailed = ["In {style} style, {subject} is {action} {scene} {time}, shot as {camera}, with {detail}."]
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cats.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_same_seed_same_bytes_different_seed_different() -> None:
    a = to_jsonl(make_prompts(300, 7))
    assert a == to_jsonl(make_prompts(300, 7))
    assert a != to_jsonl(make_prompts(300, 8))
    # A prefix of a suite is not a promise, but n and seed fully fix the output.
    assert to_jsonl(make_prompts(300, 7, load_categories(BUILTIN))) == a


def test_same_seed_same_bytes_in_a_fresh_interpreter() -> None:
    """No dependence on hash randomisation (sets / str hashing differ between processes)."""
    code = "import sys; from lift.prompts import make_prompts, to_jsonl; sys.stdout.write(to_jsonl(make_prompts(50, 3)))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": h},
        ).stdout
        for h in ("0", "12345")
    }
    assert outs == {to_jsonl(make_prompts(50, 3))}


def test_n_distinct_prompts_with_unique_ids() -> None:
    ps = make_prompts(2000, 1)
    assert len(ps) == 2000
    assert len({p.prompt for p in ps}) == 2000
    assert len({p.detailed for p in ps}) == 2000
    assert [p.id for p in ps] == [f"p{i:06d}" for i in range(1, 2001)]


def test_categories_appear_in_text_and_fit_their_kind() -> None:
    cats = load_categories()
    ps = make_prompts(1000, 5, cats)
    assert {p.categories["kind"] for p in ps} == set(cats.kinds)
    for p in ps:
        c = p.categories
        short, detailed = p.prompt.lower(), p.detailed.lower()
        for key in ("subject", "action", "scene", "time"):
            assert c[key].lower() in short, (key, p)
        for key in ("subject", "action", "scene", "time", "camera", "style"):
            assert c[key].lower() in detailed, (key, p)
        assert c["subject"] in cats.subjects[c["kind"]]
        assert c["action"] in cats.actions[c["kind"]]  # an animal never gets a vehicle's action
        assert c["camera"] in cats.cameras and c["style"] in cats.styles
        assert p.prompt[0].isupper() and p.detailed[0].isupper()


def test_builtin_lists_are_large_enough() -> None:
    cats = load_categories()
    assert max_prompts(cats) >= 100_000
    assert set(cats.kinds) == {"animals", "objects", "people", "vehicles"}
    for name in ("scenes", "times", "cameras", "styles"):
        assert len(cats.shared(name)) >= 16
    for k in cats.kinds:
        assert len(cats.subjects[k]) >= 20 and len(cats.actions[k]) >= 12
    # Kinds' actions really differ: "driving slowly" is a vehicle's, never an animal's.
    assert "driving slowly" in cats.actions["vehicles"]
    assert "driving slowly" not in cats.actions["animals"]


def test_custom_categories_file_is_used(tmp_path: Path) -> None:
    cats = load_categories(_write(tmp_path, SMALL))
    assert max_prompts(cats) == (1 * 1 + 2 * 1) * 2 * 1
    ps = make_prompts(6, 0, cats)
    assert {p.prompt for p in ps} == {
        "A chef cooking pasta in a park at night.",
        "A chef cooking pasta on a beach at night.",
        "A cat sleeping in a park at night.",
        "A cat sleeping on a beach at night.",
        "A dog sleeping in a park at night.",
        "A dog sleeping on a beach at night.",
    }
    for p in ps:
        expected = "their hands visible" if p.categories["kind"] == "people" else "its fur detailed"
        assert p.detailed.endswith(f"shot as a slow pan, with {expected}.")


def test_too_large_n_names_the_maximum(tmp_path: Path) -> None:
    cats = load_categories(_write(tmp_path, SMALL))
    with pytest.raises(ValueError, match=r"more than the 6 distinct prompts.*at most 6"):
        make_prompts(7, 0, cats)
    with pytest.raises(ValueError, match="between 1 and 100000"):
        make_prompts(0, 0, cats)


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        # missing key
        ('cameras = ["a slow pan"]\n', "", r"cameras: missing; add the list"),
        # empty list, with the line it is on
        ('times = ["at night"]', "times = []", r"cats\.toml:2: times: is empty; give at least one"),
        # wrong type of the list
        (
            'styles = ["cinematic"]',
            'styles = "cinematic"',
            r":4: styles: must be a list of strings, got str",
        ),
        # wrong type of an entry
        (
            'animals = ["a cat", "a dog"]',
            'animals = ["a cat", 3]',
            r":8: subjects\.animals: entry 2 is int",
        ),
        # duplicate entry
        (
            'scenes = ["in a park", "on a beach"]',
            'scenes = ["in a park", "in a park"]',
            r"listed twice",
        ),
        # a kind without actions
        (
            'people = ["cooking pasta"]\n',
            "",
            r"actions: no list for subject kind 'people'; add people",
        ),
        # actions for a kind without subjects
        (
            'animals = ["sleeping"]',
            'animals = ["sleeping"]\nrobots = ["beeping"]',
            r"actions\.robots: kind 'robots' has no subjects",
        ),
        # unknown placeholder
        (
            "{subject} {action} {scene} {time}.",
            "{subject} {action} {place}.",
            r":19: templates\.short: unknown placeholder \{place\}",
        ),
        # a detailed template that leaves a category out
        (", shot as {camera}", "", r"templates\.detailed: .* does not use \{camera\}; add it"),
        # unknown top-level key (a typo)
        ("times = [", "timez = [", r"timez: unknown key"),
        # TOML syntax
        ('styles = ["cinematic"]', 'styles = ["cinematic"', r"not valid TOML"),
    ],
)
def test_bad_files_say_what_to_fix(tmp_path: Path, old: str, new: str, match: str) -> None:
    assert old in SMALL
    with pytest.raises(PromptDataError, match=match):
        load_categories(_write(tmp_path, SMALL.replace(old, new, 1)))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PromptDataError, match="no such file"):
        load_categories(tmp_path / "nope.toml")


def test_cli_writes_valid_jsonl(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["prompts", "make", "--n", "25", "--seed", "4"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert len(lines) == 25
    rows = [json.loads(line) for line in lines]
    assert all(set(r) == {"id", "prompt", "detailed", "categories"} for r in rows)
    assert res.stdout == to_jsonl(make_prompts(25, 4))

    out = tmp_path / "suite.jsonl"
    cats = _write(tmp_path, SMALL)
    res = runner.invoke(
        app,
        [
            "prompts",
            "make",
            "--n",
            "6",
            "--seed",
            "1",
            "--categories",
            str(cats),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len({r["prompt"] for r in rows}) == 6
    assert {r["categories"]["kind"] for r in rows} == {"people", "animals"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--n", "7", "--seed", "1", "--categories", "CATS"], "at most 6"),
        (["--n", "1", "--seed", "1", "--categories", "MISSING"], "no such file"),
        (["--n", "0", "--seed", "1"], "--n"),
        (["--n", "100001", "--seed", "1"], "--n"),
    ],
)
def test_cli_usage_errors_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    cats = _write(tmp_path, SMALL)
    args = [
        str(cats) if a == "CATS" else str(tmp_path / "missing.toml") if a == "MISSING" else a
        for a in args
    ]
    res = CliRunner().invoke(app, ["prompts", "make", *args])
    assert res.exit_code == 2
    assert needle in res.output
