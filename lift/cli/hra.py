"""`lift hra validate|eval`: human-rating files (LiFT-HRA style) and critic agreement."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lift.cli.common import fail, needs_extra

if TYPE_CHECKING:
    from lift.hra.agreement import AgreementReport

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


def _critic_spec(spec: str, templates: str | None):  # type: ignore[no-untyped-def]
    """One ``--critic SPEC`` as (row name, in-process critic settings); exit 2 if unusable.

    Checked before any video is judged, so a typo costs nothing. The name says which
    critic a row is: ``signal``, ``signal+cal-<sha8>`` (the calibration file's own
    tag, as the served model version shows it) or ``vlm DIR[+ADAPTER]``.
    """
    from pydantic import ValidationError

    kind, _, rest = spec.partition(":")
    if kind not in ("signal", "vlm") or (kind == "vlm" and not rest):
        fail(
            f"--critic {spec!r}: expected signal, signal:CALIBRATION.json or vlm:DIR[:ADAPTER]",
            code=2,
        )
    with needs_extra("critic", f"lift hra eval --critic {spec}"):
        from lift.services.critic.backends.signal.calibration import (
            CalibrationError,
            load_calibration,
        )
        from lift.services.critic.settings import CriticSettings
    fields: dict[str, Any] = {"backend": kind, "templates": templates}
    if kind == "signal":
        name = "signal"
        if rest:
            try:
                cal = load_calibration(Path(rest))
            except CalibrationError as exc:
                fail(f"--critic {spec!r}: {exc}", code=2)
            name = f"signal+{cal.tag}"
            fields["calibration"] = Path(rest)
    else:
        model_dir, _, adapter_dir = rest.partition(":")
        name = f"vlm {model_dir}" + (f"+{adapter_dir}" if adapter_dir else "")
        fields["model"] = Path(model_dir)
        fields["adapter"] = Path(adapter_dir) if adapter_dir else None
    try:
        return name, CriticSettings(**fields)
    except ValidationError as exc:
        fail(f"--critic {spec!r}: invalid critic settings: {exc}", code=2)


def _check_png_path(png: Path) -> None:
    """Refuse a PNG path we could not write before spending time on judging."""
    if png.is_dir():
        fail(f"--png {png}: is a directory; give a file name such as {png / 'agreement.png'}", 2)
    if not png.parent.is_dir():
        fail(f"--png {png}: directory {png.parent} does not exist; create it first", code=2)


def _write_png(png: Path, reports: Sequence[AgreementReport]) -> None:
    """Confusion matrices as a figure: a row per critic, a 3x3 matrix per dimension.

    Human labels are rows and the critic's are columns, as in the text report, so a
    heavy off-diagonal cell reads the same way in both. matplotlib (Agg, no display)
    is imported only here: the rest of the command does not need it.
    """
    from lift.critique import ASSESSED_LABELS, DIMENSIONS

    with needs_extra("trainer", "lift hra eval --png"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

    labels = [lab.value for lab in ASSESSED_LABELS]
    fig = Figure(figsize=(4.2 * len(DIMENSIONS), 3.9 * len(reports)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(reports), len(DIMENSIONS), squeeze=False)
    for row, report in zip(axes, reports, strict=True):
        for ax, dim in zip(row, DIMENSIONS, strict=True):
            a = report.dimensions[dim]
            dim_name = dim.value.replace("_", " ")
            if a.compared == 0:
                ax.set_axis_off()
                ax.set_title(f"{report.critic}\n{dim_name}: not assessed", fontsize=9)
                continue
            m = [[a.confusion[h][c] for c in ASSESSED_LABELS] for h in ASSESSED_LABELS]
            top = max(max(r) for r in m) or 1
            ax.imshow(m, cmap="Blues", vmin=0, vmax=top)
            for i, r in enumerate(m):
                for j, n in enumerate(r):
                    colour = "white" if n > top / 2 else "black"
                    ax.text(j, i, str(n), ha="center", va="center", color=colour)
            ax.set_xticks(range(len(labels)), labels)
            ax.set_yticks(range(len(labels)), labels)
            ax.set_xlabel("critic")
            ax.set_ylabel("human")
            acc = f"{100 * a.accuracy:.1f}%" if a.accuracy is not None else "—"
            ax.set_title(f"{report.critic}\n{dim_name}: {acc} (n={a.compared})", fontsize=9)
    fig.suptitle("Agreement with human labels (human rows, critic columns)")
    try:
        fig.savefig(png, dpi=90)
    except OSError as exc:
        fail(f"--png {png}: cannot write it: {exc.strerror or exc}", code=2)


@hra_app.command("eval")
def evaluate(
    file: Annotated[Path, typer.Argument(help="HRA file: JSON array or JSON lines")],
    server: Annotated[
        list[str] | None,
        typer.Option(
            help="Critic to evaluate: host:port (gRPC) or http://host:port; repeat for several"
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Evaluate an in-process backend instead: signal, vlm, composite"),
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Checkpoint directory (vlm, composite)")
    ] = None,
    adapter: Annotated[Path | None, typer.Option(help="peft LoRA adapter directory")] = None,
    critic: Annotated[
        list[str] | None,
        typer.Option(
            help="In-process critic, repeatable: signal, signal:CALIBRATION.json "
            "or vlm:DIR[:ADAPTER]"
        ),
    ] = None,
    templates: TemplatesOpt = None,
    signal: Annotated[
        bool, typer.Option(help="Also report the signal backend where it assesses")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    png: Annotated[
        Path | None,
        typer.Option(help="Also draw every critic's confusion matrices into this PNG file"),
    ] = None,
) -> None:
    """Agreement of critics with the human labels: accuracy and confusion per dimension.

    Each critic (every --server, the --backend, every --critic) is one row of the
    paper's Table-2 layout, so before/after a calibration or signal vs a VLM compare
    on the same ratings in one table.
    """
    from pydantic import ValidationError
    from rich.console import Console

    from lift.cli.render import print_agreement
    from lift.hra.agreement import agreement

    servers = list(server or [])
    specs = list(critic or [])
    if not servers and backend is None and not specs:
        fail("give at least one critic: --server, --backend or --critic", code=2)
    if backend is None and (model is not None or adapter is not None):
        fail("--model and --adapter go with --backend (or use --critic vlm:DIR[:ADAPTER])", 2)
    in_process = [_critic_spec(spec, templates) for spec in specs]
    if png is not None:
        _check_png_path(png)
    records, errors = _read(file, templates)
    if errors:
        for e in errors:
            typer.secho(f"{file}:{e}", fg="red", err=True)
        typer.secho("fix the file first (`lift hra validate`)", fg="red", err=True)
        raise typer.Exit(1)
    reports: list[AgreementReport] = []
    for address in servers:
        reports.append(agreement(address, records, _judge_with_server(file, address)))
    if backend is not None:
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
    for name, settings in in_process:
        judge, engine = _judge_in_process(file, settings)
        reports.append(agreement(name, records, judge))
        engine.close()
    plain_signal = backend == "signal" or "signal" in specs
    if signal and not plain_signal:
        try:  # the comparison runs the signal critic in this process: the critic extra
            from lift.services.critic.settings import CriticSettings
        except ModuleNotFoundError as exc:
            if not servers:
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
            engine.close()
    if as_json:
        sys.stdout.write(json.dumps([r.as_dict() for r in reports], indent=2) + "\n")
    else:
        print_agreement(Console(), reports)
    if png is not None:
        _write_png(png, reports)
        typer.echo(f"confusion matrices: {png}", err=True)
    if any(r.errors for r in reports):
        raise typer.Exit(1)
