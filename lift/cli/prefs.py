"""`lift prefs validate|eval`: human preference pairs (VideoAlign's CSV) and critic agreement."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from lift.cli.common import needs_extra

prefs_app = typer.Typer(
    help="Human preference pairs (VideoAlign's CSV: path_A, path_B, prompt, VQ, MQ, TA).",
    no_args_is_help=True,
)


def _read(file: Path, check_videos: bool = True):  # type: ignore[no-untyped-def]
    from lift.hra.prefs import read_prefs

    return read_prefs(file, check_videos=check_videos)


@prefs_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="Preference CSV (VideoAlign's format)")],
    check_videos: Annotated[bool, typer.Option(help="Check that every video file exists")] = True,
) -> None:
    """Check a preference CSV; print every error with its line, exit 1 if there are any."""
    pairs, errors = _read(file, check_videos)
    for e in errors:
        typer.secho(f"{file}:{e}", fg="red", err=True)
    typer.echo(f"{file}: {len(pairs)} valid pairs, {len(errors)} errors")
    if errors:
        raise typer.Exit(1)


@prefs_app.command("eval")
def evaluate(
    file: Annotated[Path, typer.Argument(help="Preference CSV (VideoAlign's format)")],
    server: Annotated[
        str | None, typer.Option(help="Critic to evaluate: host:port (gRPC) or http://host:port")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Evaluate an in-process backend instead: signal, vlm, composite"),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Checkpoint directory (vlm, composite)")
    ] = None,
    adapter: Annotated[Path | None, typer.Option(help="peft LoRA adapter directory")] = None,
    templates: Annotated[
        str | None, typer.Option(help="Template preset or file (vlm: labels / rating protocols)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """How often the critic prefers the video humans preferred, per dimension (w/ and w/o ties)."""
    from pydantic import ValidationError
    from rich.console import Console

    from lift.cli.hra import _judge_in_process, _judge_with_server
    from lift.hra.prefs import preference_agreement

    if (server is None) == (backend is None):
        typer.secho("give exactly one of --server or --backend", fg="red", err=True)
        raise typer.Exit(2)
    pairs, errors = _read(file)
    if errors:
        for e in errors:
            typer.secho(f"{file}:{e}", fg="red", err=True)
        typer.secho("fix the file first (`lift prefs validate`)", fg="red", err=True)
        raise typer.Exit(1)
    # The videos are absolute paths (or URIs) by now: the judges take them as given.
    if server is not None:
        report = preference_agreement(server, file, pairs, _judge_with_server(file, server))
    else:
        with needs_extra("critic", f"lift prefs eval --backend {backend}"):
            from lift.services.critic.settings import CriticSettings
        try:
            settings = CriticSettings(
                backend=backend, model=model, adapter=adapter, templates=templates
            )
        except ValidationError as exc:
            typer.secho(f"invalid critic settings: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        judge, engine = _judge_in_process(file, settings)
        try:
            name = f"{backend} ({engine.backend.model.name})"
            report = preference_agreement(name, file, pairs, judge)
        finally:
            engine.close()
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        print_preferences(Console(), [report])
    if report.errors:
        raise typer.Exit(1)


def print_preferences(console, reports) -> None:  # type: ignore[no-untyped-def]
    """`lift hra eval`'s table layout: a row per critic and accuracy kind, a column per dimension."""
    from rich.table import Table

    from lift.cli.render import _pct
    from lift.hra.prefs import PREF_COLUMNS

    columns = [c for c in PREF_COLUMNS if any(c in r.columns for r in reports)]
    table = Table(title="Agreement with human preferences (accuracy %)", title_justify="left")
    table.add_column("critic")
    table.add_column("ties")
    for c in columns:
        dim = PREF_COLUMNS[c]
        name = "reward" if dim is None else dim.value.replace("_", " ").title()
        table.add_column(f"{name} ({c})", justify="right")
    table.add_column("Avg", justify="right")
    table.add_column("n", justify="right")
    for r in reports:
        n = max((x.compared for x in r.columns.values()), default=0)
        for kind, with_ties in (("w/ ties", True), ("w/o ties", False)):
            accs = []
            for c in columns:
                x = r.columns.get(c)
                acc = (
                    None
                    if x is None
                    else (x.accuracy_with_ties if with_ties else x.accuracy_without_ties)
                )
                accs.append(_pct(acc))
            table.add_row(r.critic, kind, *accs, _pct(r.average(with_ties)), str(n))
    console.print(table)
    for r in reports:
        counts = Table(
            title=f"{r.critic}: pairs (C agree, D disagree, Th human tie only, "
            "Tm critic tie only, Thm both tie; ties at ε = 0)",
            title_justify="left",
        )
        counts.add_column("")
        for key in ("C", "D", "Th", "Tm", "Thm", "unassessed"):
            counts.add_column(key, justify="right")
        for c, x in r.columns.items():
            s = x.stats(0.0)
            counts.add_row(
                c, *(str(s[k]) for k in ("C", "D", "Th", "Tm", "Thm")), str(x.unassessed)
            )
        console.print(counts)
        for p, err in r.errors:
            console.print(f"[red]{r.critic}: line {p.line} ({p.video_a}, {p.video_b}): {err}[/red]")
