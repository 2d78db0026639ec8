"""`lift hra validate|eval`: human-rating files (LiFT-HRA style) and critic agreement."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from lift.cli.common import needs_extra

hra_app = typer.Typer(help="Human-rating (LiFT-HRA) data tools.", no_args_is_help=True)

TemplatesOpt = Annotated[
    str | None,
    typer.Option(
        help="Template preset (lift-13b, ...) or file the data was written with [default built-in]"
    ),
]
_CHUNK = 8  # items per Score call


def _read(file: Path, templates: str | None, check_videos: bool = True):  # type: ignore[no-untyped-def]
    from lift.hra.records import read_hra
    from lift.templates import TemplateError, load_templates

    try:
        tpl = load_templates(templates)
    except TemplateError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    return read_hra(file, tpl, check_videos=check_videos)


@hra_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="HRA file: JSON array or JSON lines")],
    templates: TemplatesOpt = None,
    check_videos: Annotated[bool, typer.Option(help="Check that every video file exists")] = True,
) -> None:
    """Check an HRA file; print every error with its line, exit 1 if there are any."""
    records, errors = _read(file, templates, check_videos)
    for e in errors:
        typer.secho(f"{file}:{e}", fg="red", err=True)
    by_dim: dict[str, int] = {}
    for r in records:
        by_dim[r.dimension.value] = by_dim.get(r.dimension.value, 0) + 1
    counts = ", ".join(f"{k} {v}" for k, v in sorted(by_dim.items())) or "none"
    typer.echo(f"{file}: {len(records)} valid records ({counts}), {len(errors)} errors")
    if errors:
        raise typer.Exit(1)


def _judge_with_server(file: Path, server: str):  # type: ignore[no-untyped-def]
    from lift.client import CriticClient, CriticError
    from lift.critique import Critique
    from lift.hra.records import resolve_video

    def judge(pairs: Sequence[tuple[str, str]]) -> list[Critique | str]:
        out: list[Critique | str] = []
        with CriticClient(server) as client:
            for i in range(0, len(pairs), _CHUNK):
                chunk = pairs[i : i + _CHUNK]
                items = [(resolve_video(file, video), prompt) for video, prompt in chunk]
                try:
                    results = client.score(items)
                except CriticError as exc:
                    out += [str(exc)] * len(chunk)
                    continue
                out += [r if isinstance(r, Critique) else str(r) for r in results]
        return out

    return judge


def _judge_in_process(file: Path, settings):  # type: ignore[no-untyped-def]
    from lift.critique import Critique
    from lift.hra.records import resolve_video
    from lift.services.critic.engine import CriticEngine, VideoSource
    from lift.serving import Deadline

    engine = CriticEngine(settings)
    engine.load()

    def judge(pairs: Sequence[tuple[str, str]]) -> list[Critique | str]:
        out: list[Critique | str] = []
        for i in range(0, len(pairs), _CHUNK):
            items = [
                (VideoSource.from_arg(resolve_video(file, video)), prompt)
                for video, prompt in pairs[i : i + _CHUNK]
            ]
            for o in engine.score(items, Deadline()):
                out.append(o.critique if o.critique is not None else str(o.error))
        return out

    return judge, engine


@hra_app.command("eval")
def evaluate(
    file: Annotated[Path, typer.Argument(help="HRA file: JSON array or JSON lines")],
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
    templates: TemplatesOpt = None,
    signal: Annotated[
        bool, typer.Option(help="Also report the signal backend where it assesses")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Agreement of a critic with the human labels: accuracy and confusion per dimension."""
    from pydantic import ValidationError
    from rich.console import Console

    from lift.cli.render import print_agreement
    from lift.hra.agreement import agreement

    if (server is None) == (backend is None):
        typer.secho("give exactly one of --server or --backend", fg="red", err=True)
        raise typer.Exit(2)
    records, errors = _read(file, templates)
    if errors:
        for e in errors:
            typer.secho(f"{file}:{e}", fg="red", err=True)
        typer.secho("fix the file first (`lift hra validate`)", fg="red", err=True)
        raise typer.Exit(1)
    reports = []
    if server is not None:
        reports.append(agreement(server, records, _judge_with_server(file, server)))
    else:
        with needs_extra("critic", f"lift hra eval --backend {backend}"):
            from lift.services.critic.settings import CriticSettings
        try:
            settings = CriticSettings(
                backend=backend, model=model, adapter=adapter, templates=templates
            )
        except ValidationError as exc:
            typer.secho(f"invalid critic settings: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        judge, engine = _judge_in_process(file, settings)
        reports.append(agreement(f"{backend} ({engine.backend.model.name})", records, judge))
        engine.close()
    if signal and backend != "signal":
        try:  # the comparison runs the signal critic in this process: the critic extra
            from lift.services.critic.settings import CriticSettings
        except ModuleNotFoundError as exc:
            if server is None:
                raise
            typer.secho(
                f"no signal report: the in-process signal critic needs {exc.name!r} "
                "(pip install 'lift-suite[critic]'); --no-signal silences this",
                fg="yellow",
                err=True,
            )
        else:
            judge, engine = _judge_in_process(file, CriticSettings(backend="signal"))
            reports.append(agreement("signal", records, judge))
    if as_json:
        sys.stdout.write(json.dumps([r.as_dict() for r in reports], indent=2) + "\n")
    else:
        print_agreement(Console(), reports)
    if any(r.errors for r in reports):
        raise typer.Exit(1)
