"""Readable terminal output of critiques and agreement reports (rich)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Critique, Label
from lift.hra.agreement import PAPER_TABLE2, AgreementReport

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


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def print_agreement(console: Console, reports: Sequence[AgreementReport]) -> None:
    """The paper's Table-2 layout (accuracy % per dimension and average), then confusions."""
    table = Table(title="Agreement with human labels (accuracy %)", title_justify="left")
    table.add_column("critic")
    for d in DIMENSIONS:
        table.add_column(d.value.replace("_", " ").title(), justify="right")
    table.add_column("Avg", justify="right")
    table.add_column("n", justify="right")
    for r in reports:
        accs = [_pct(r.dimensions[d].accuracy) for d in DIMENSIONS]
        n = sum(a.compared for a in r.dimensions.values())
        table.add_row(r.critic, *accs, _pct(r.average), str(n))
    for name, nums in PAPER_TABLE2.items():
        table.add_row(f"[dim]{name}[/dim]", *(f"[dim]{x:.1f}[/dim]" for x in nums), "")
    console.print(table)
    for r in reports:
        for d in DIMENSIONS:
            a = r.dimensions[d]
            if a.compared == 0:
                continue
            conf = Table(
                title=f"{r.critic} — {d.value}: human (rows) vs critic (columns)",
                title_justify="left",
            )
            conf.add_column("")
            for lab in ASSESSED_LABELS:
                conf.add_column(lab.value, justify="right")
            for h in ASSESSED_LABELS:
                conf.add_row(h.value, *(str(a.confusion[h][c]) for c in ASSESSED_LABELS))
            console.print(conf)
        for rec, err in r.errors:
            console.print(f"[red]{r.critic}: line {rec.line} ({rec.video}): {err}[/red]")
