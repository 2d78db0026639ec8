"""`lift prompts make`: prompt suites built from category lists (pure Python, no torch)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

prompts_app = typer.Typer(help="Prompt suites for generation and rating.", no_args_is_help=True)


@prompts_app.command("make")
def make(
    n: Annotated[int, typer.Option("--n", min=1, max=100_000, help="How many prompts (1..100000)")],
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: same seed and lists, same suite")
    ],
    categories: Annotated[
        Path | None,
        typer.Option(
            "--categories",
            help="TOML file of category lists and templates that replaces the built-in one "
            "(lift/prompts/categories.toml shows the layout)",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON lines here [default stdout]")
    ] = None,
) -> None:
    """Combine categories into N distinct short prompts and expand each into a detailed one.

    One JSON object per line: id, prompt, detailed and the categories it combines.
    """
    from lift.prompts import PromptDataError, load_categories, make_prompts, to_jsonl

    try:
        cats = load_categories(categories)
        text = to_jsonl(make_prompts(n, seed, cats))
    except (PromptDataError, ValueError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    if out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        out.write_text(text, encoding="utf-8", newline="\n")
    except OSError as exc:
        typer.secho(
            f"{out}: cannot write ({exc.strerror}); pick a writable path", fg="red", err=True
        )
        raise typer.Exit(2) from None
    typer.echo(f"{out}: {n} prompts (seed {seed}, lists {cats.source})", err=True)
