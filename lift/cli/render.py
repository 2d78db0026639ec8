"""Readable terminal output of critiques (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lift.critique import Critique, Label

_STYLE = {Label.GOOD: "green", Label.NORMAL: "yellow", Label.BAD: "red", Label.UNASSESSED: "dim"}


def critique_table(name: str, c: Critique) -> Table:
    """One table per video: a row per dimension with label, score, issues and reasons."""
    reward = "n/a" if c.reward is None else f"{c.reward:.3f}"
    dyn = "" if c.dynamic_degree is None else f"  dynamic degree {c.dynamic_degree:.2f}"
    table = Table(
        title=f"{name}  reward {reward}{dyn}  ({c.model.backend} {c.model.name})",
        title_justify="left",
        show_lines=True,
    )
    table.add_column("dimension")
    table.add_column("label")
    table.add_column("score", justify="right")
    table.add_column("issues")
    table.add_column("reasons", ratio=1)
    for d in c.dimensions:
        issues = "\n".join(
            f"{i.tag} {i.start_s:.2f}–{i.end_s:.2f}s ({i.severity:.2f})" for i in d.issues
        )
        table.add_row(
            d.name.value.replace("_", " "),
            f"[{_STYLE[d.label]}]{d.label.value}[/]",
            "—" if d.score is None else f"{d.score:.2f}",
            issues or "—",
            "\n".join(d.reasons),
        )
    return table


def print_critique(console: Console, name: str, c: Critique) -> None:
    """Print one critique as a table."""
    console.print(critique_table(name, c))
