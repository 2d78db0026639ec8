"""`lift critic serve|export|calibrate|train`, `lift critique` and `lift compare`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lift.cli.common import (
    CaFileOpt,
    ClientCertOpt,
    ClientKeyOpt,
    TlsOpt,
    TokenOpt,
    credentials,
    fail,
    needs_extra,
    run_service,
    settings_or_exit,
)

critic_app = typer.Typer(help="The critic service.", no_args_is_help=True)

ModelOpt = Annotated[
    Path | None, typer.Option(help="Checkpoint directory of the video VLM (vlm, composite)")
]
AdapterOpt = Annotated[
    Path | None,
    typer.Option(
        help="LoRA adapter directory (peft; LiFT/LLaVA style with non_lora_trainables.bin)"
    ),
]
TemplatesOpt = Annotated[
    str | None,
    typer.Option(
        help="Template preset (lift-13b, lift-40b) or instruction template file (TOML) "
        "[default built-in LiFT]"
    ),
]


def critic_settings(overrides: dict[str, Any]) -> Any:
    """CriticSettings from the given flags (exit 2 on invalid values)."""
    with needs_extra("critic", "the critic"):  # its settings already need video decoding
        from lift.services.critic.settings import CriticSettings

    return settings_or_exit("critic", CriticSettings, overrides)


@critic_app.command("export")
def critic_export(
    model: Annotated[
        Path, typer.Option(help="Critic checkpoint directory (Qwen2-VL or VILA family)")
    ],
    out: Annotated[Path, typer.Option(help="Directory for vision.onnx and vision.json")],
    adapter: Annotated[
        Path | None,
        typer.Option(help="VILA: LoRA directory to apply first (serve with the same --adapter)"),
    ] = None,
) -> None:
    """Export the critic's vision tower + projector to ONNX (dynamic batch) for onnx/triton."""
    from lift.errors import LiftError

    with needs_extra("critic", "lift critic export"):
        from lift.services.critic.backends.vlm.vision_graph import export

        try:
            path = export(model, out, adapter)
        except (LiftError, OSError, ValueError) as exc:
            fail(f"export failed: {getattr(exc, 'message', exc)}", code=2)
    typer.echo(f"wrote {path} and {path.with_name('vision.json')}")


@critic_app.command("serve")
def critic_serve(
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port [default 50051]")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP port [default 8080]")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [default 127.0.0.1]")] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Critic backend: signal, vlm, composite, onnx, triton [default signal]"),
    ] = None,
    model: ModelOpt = None,
    vision_graph: Annotated[
        Path | None, typer.Option(help="onnx/triton: directory `lift critic export` wrote")
    ] = None,
    triton_url: Annotated[
        str | None, typer.Option(help="triton: Triton's gRPC address [default 127.0.0.1:8001]")
    ] = None,
    adapter: AdapterOpt = None,
    templates: TemplatesOpt = None,
    protocol: Annotated[
        str | None,
        typer.Option(help="vlm: how the checkpoint's outputs become a critique [default auto]"),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, float32, bfloat16, float16")] = None,
    num_frames: Annotated[int | None, typer.Option(help="Frames the VLM sees [default 8]")] = None,
    batch_max_size: Annotated[
        int | None, typer.Option(help="Most videos per model call [default 8]")
    ] = None,
    batch_max_wait_ms: Annotated[
        float | None, typer.Option(help="Wait for a batch to fill, ms [default 5]")
    ] = None,
    video_root: Annotated[
        Path | None, typer.Option(help="Directory file:// video URIs may read from")
    ] = None,
    calibration: Annotated[
        Path | None,
        typer.Option(help="signal/composite: calibration file `lift critic calibrate` wrote"),
    ] = None,
) -> None:
    """Run the critic: gRPC and HTTP in one process (settings also from LIFT_CRITIC_* env)."""
    settings = critic_settings(
        {
            "grpc_port": grpc_port,
            "http_port": http_port,
            "host": host,
            "backend": backend,
            "protocol": protocol,
            "model": model,
            "vision_graph": vision_graph,
            "triton_url": triton_url,
            "adapter": adapter,
            "templates": templates,
            "device": device,
            "dtype": dtype,
            "num_frames": num_frames,
            "batch_max_size": batch_max_size,
            "batch_max_wait_ms": batch_max_wait_ms,
            "video_root": video_root,
            "calibration": calibration,
        }
    )
    with needs_extra("critic", "lift critic serve"):
        from lift.services.critic.server import build_critic

        run_service("critic", settings, build_critic)


@critic_app.command("calibrate")
def critic_calibrate(
    data: Annotated[Path, typer.Option(help="Human ratings to fit on (LiFT-HRA JSON lines)")],
    out: Annotated[Path, typer.Option(help="Calibration file to write (JSON)")],
    eval_file: Annotated[
        Path | None,
        typer.Option(
            "--eval", help="Held-out ratings to report agreement on [default: the --data file]"
        ),
    ] = None,
    templates: TemplatesOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Fit the signal critic's ordinal models (weights, cut points) to human labels."""
    with needs_extra("critic", "lift critic calibrate"):
        from lift.services.critic.backends.signal import SignalBackend
        from lift.services.critic.backends.signal import calibration as cal
    from dataclasses import replace

    from lift.hra.records import resolve_video
    from lift.templates import TemplateError, load_templates

    try:
        tpl = load_templates(templates)
    except TemplateError as exc:
        fail(f"templates: {exc}", code=2)
    try:
        train_records = cal.read_ratings(data, tpl)
        eval_records = cal.read_ratings(eval_file, tpl) if eval_file is not None else None
        train = cal.measure_evidence(train_records, data)
        held_out = (
            cal.measure_evidence(eval_records, eval_file)
            if eval_records is not None and eval_file is not None
            else train
        )
    except cal.CalibrationError as exc:
        fail(str(exc), code=2)
    if not train:
        fail(
            f"{data}: no usable records: the signal critic assesses only "
            "motion_smoothness and video_fidelity",
            code=2,
        )
    results = cal.calibrate(train, held_out)
    # Labels on dimensions the critic does not assess never reach the fit; count them anyway.
    given = [r.dimension for r in train_records], [r.dimension for r in eval_records or []]
    results = [
        r
        if r.dimension in SignalBackend.assessed
        else replace(
            r, train_labels=given[0].count(r.dimension), eval_labels=given[1].count(r.dimension)
        )
        for r in results
    ]
    fitted = {r.dimension: r.model for r in results if r.model is not None}
    if not fitted:
        fail(
            f"{data}: no dimension has enough labels to fit (need {cal.MIN_LABELS} per dimension)",
            code=2,
        )
    on = "held-out" if eval_file is not None else "training (no --eval given)"
    videos = len({resolve_video(data, r.record.video) for r in train})
    fitted_on = {"records": len(train), "videos": videos, "sha256": cal.sha256_of(data)}
    sha = cal.save_calibration(out, fitted, fitted_on)
    report = {
        "out": str(out),
        "version_tag": f"cal-{sha[:8]}",
        "agreement_on": "held_out" if eval_file is not None else "training",
        "fitted_on": fitted_on,
        "dimensions": {
            r.dimension.value: {
                "train_labels": r.train_labels,
                "eval_labels": r.eval_labels,
                "accuracy_before": r.before,
                "accuracy_after": r.after,
                "note": r.note or None,
            }
            for r in results
        },
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"agreement with the human labels on the {on} data:")
    for r in results:
        line = f"  {r.dimension.value:<22} before {_pct(r.before):>6}  after {_pct(r.after):>6}"
        line += f"  ({r.train_labels} train / {r.eval_labels} eval labels)"
        typer.echo(line + (f"  note: {r.note}" if r.note else ""))
    typer.echo(f"wrote {out} (model version +cal-{sha[:8]}; serve with --calibration {out})")


def _local_engine(
    command: str, backend: str, model: Path | None, adapter: Path | None, templates: str | None
) -> Any:
    """A loaded in-process CriticEngine for ``command`` run without --server (exit on failure)."""
    settings = critic_settings(
        {"backend": backend, "model": model, "adapter": adapter, "templates": templates}
    )
    with needs_extra("critic", f"{command} without --server"):
        from lift.services.critic.engine import CriticEngine

        engine = CriticEngine(settings)
        try:
            engine.load()
        except (OSError, ValueError) as exc:
            fail(f"could not load the critic: {exc}")
    return engine


def critique(
    videos: Annotated[list[str], typer.Argument(help="Video files (or URIs the server can read)")],
    prompt: Annotated[str, typer.Option(help="The text the videos were generated from")],
    server: Annotated[
        str | None,
        typer.Option(
            help="Critic to ask: host:port (gRPC) or http://host:port; default in-process"
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of tables")
    ] = False,
    backend: Annotated[
        str, typer.Option(help="In-process backend (without --server): signal, vlm, composite")
    ] = "signal",
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    templates: TemplatesOpt = None,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
) -> None:
    """Critique videos against a prompt and print a table (or JSON)."""
    from rich.console import Console

    from lift.cli.render import print_critique
    from lift.critique import Critique, to_json

    console = Console()
    failures = 0

    def show(name: str, c: Critique) -> None:
        if as_json:
            sys.stdout.write(json.dumps({"file": name, **to_json(c)}) + "\n")
        else:
            print_critique(console, name, c)

    def failed(name: str, message: str) -> None:
        nonlocal failures
        failures += 1
        typer.secho(f"{name}: {message}", fg="red", err=True)

    if server:
        from lift.client import CriticClient, CriticError

        creds = credentials(token, tls, ca_file, client_cert, client_key)
        with CriticClient(server, credentials=creds) as client:
            for v in videos:
                try:
                    show(v, client.critique(v, prompt))
                except (CriticError, OSError) as exc:
                    failed(v, str(exc))
    else:
        from lift.errors import LiftError

        engine = _local_engine("lift critique", backend, model, adapter, templates)
        with needs_extra("critic", "lift critique without --server"):
            from lift.services.critic.engine import VideoSource
            from lift.serving import Deadline

            for v in videos:
                try:
                    show(v, engine.critique(VideoSource.from_arg(v), prompt, Deadline()))
                except (LiftError, OSError) as exc:
                    failed(v, getattr(exc, "message", str(exc)))
    if failures:
        raise typer.Exit(1)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _winner(prob_a: float | None, prob_b: float | None, prob_tie: float | None) -> str:
    if prob_a is None or prob_b is None:
        return "[dim]not compared[/]"
    best = max((prob_a, "[green]a[/]"), (prob_b, "[green]b[/]"), (prob_tie or 0.0, "tie"))
    return best[1]


def comparison_table(name_a: str, name_b: str, c: Any) -> Any:
    """A table of a :class:`lift.critique.Comparison`: a row per dimension, then overall."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"a = {escape(name_a)}\nb = {escape(name_b)}\n"
        f"{c.method}  ({c.model.backend} {escape(c.model.name)} {escape(c.model.version)})",
        title_justify="left",
    )
    for col in ("dimension", "P(a better)", "P(tie)", "P(b better)", "prefers"):
        table.add_column(col, justify="left" if col in ("dimension", "prefers") else "right")
    rows = [(d.name.value.replace("_", " "), d.preference) for d in c.dimensions]
    for label, p in [*rows, ("[bold]overall[/]", c.overall)]:
        table.add_row(
            label,
            _pct(p.prob_a),
            _pct(p.prob_tie),
            _pct(p.prob_b),
            _winner(p.prob_a, p.prob_b, p.prob_tie),
        )
    return table


def compare(
    a: Annotated[str, typer.Argument(help="First video file (or a URI the server can read)")],
    b: Annotated[str, typer.Argument(help="Second video file (or a URI the server can read)")],
    prompt: Annotated[str, typer.Option(help="The text both videos were generated from")],
    server: Annotated[
        str | None,
        typer.Option(
            help="Critic to ask: host:port (gRPC) or http://host:port; default in-process"
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the comparison as JSON instead of a table")
    ] = False,
    backend: Annotated[
        str, typer.Option(help="In-process backend (without --server): signal, vlm, composite")
    ] = "signal",
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    templates: TemplatesOpt = None,
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
) -> None:
    """Which of two videos of one prompt is better: P(a), P(tie), P(b) per dimension and overall."""
    from lift.uris import is_uri

    # Both files are read first, naming the one that is not readable (before a model loads).
    videos: list[str | bytes] = []
    for name, arg in (("a", a), ("b", b)):
        try:
            videos.append(arg if is_uri(arg) else Path(arg).read_bytes())
        except OSError as exc:
            fail(f"video {name}: cannot read {arg}: {exc.strerror or exc}")
    if server:
        from lift.client import CriticClient, CriticError

        creds = credentials(token, tls, ca_file, client_cert, client_key)
        with CriticClient(server, credentials=creds) as client:
            try:
                c = client.compare(videos[0], videos[1], prompt)
            except CriticError as exc:
                fail(str(exc))
    else:
        from lift.errors import LiftError

        engine = _local_engine("lift compare", backend, model, adapter, templates)
        with needs_extra("critic", "lift compare without --server"):
            from lift.services.critic.engine import VideoSource
            from lift.serving import Deadline

            try:
                sources = [
                    VideoSource(uri=v) if isinstance(v, str) else VideoSource(data=v)
                    for v in videos
                ]
                c = engine.compare(prompt, sources[0], sources[1], Deadline())
            except LiftError as exc:
                fail(exc.message)
            finally:
                engine.close()
    if as_json:
        from lift.critique import comparison_to_json

        sys.stdout.write(json.dumps({"a": a, "b": b, **comparison_to_json(c)}) + "\n")
    else:
        from rich.console import Console

        Console().print(comparison_table(a, b, c))


DEMO_TRAIN_CLIPS, DEMO_TEST_CLIPS = 480, 48
"""The demo's rule data (``lift critic train --demo``): clips to train on and held out
(the rule test's sizes and run, tests/unit/test_critic_train.py)."""


@critic_app.command("train")
def critic_train(
    ctx: typer.Context,
    data: Annotated[
        Path | None, typer.Option(help="Human ratings to train on (LiFT-HRA JSON lines)")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Critic checkpoint directory (Qwen2-VL, Qwen2.5-VL or VILA family)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Adapter directory to write (checkpoints in OUT/checkpoints)"),
    ] = None,
    eval_file: Annotated[
        Path | None,
        typer.Option("--eval", help="Held-out ratings: agreement before training and per epoch"),
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the data")] = 3,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 2e-4,
    rank: Annotated[int, typer.Option(help="LoRA rank")] = 16,
    alpha: Annotated[int, typer.Option(help="LoRA alpha (scale alpha / rank)")] = 32,
    batch_size: Annotated[int, typer.Option(help="Ratings per step (per device)")] = 8,
    grad_accum: Annotated[int, typer.Option(help="Batches per optimizer step")] = 1,
    num_frames: Annotated[int, typer.Option(help="Frames the VLM sees (as served)")] = 8,
    templates: TemplatesOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the LoRA init and the data order")] = 0,
    resume: Annotated[
        bool, typer.Option(help="Continue from the newest checkpoint in OUT/checkpoints")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16, float16")] = "auto",
    train_projector: Annotated[
        bool | None,
        typer.Option(
            "--train-projector/--no-train-projector",
            help="Also train the vision projector in full (default: yes for Qwen2-VL / "
            "Qwen2.5-VL, no for VILA, as LiFT's recipe)",
        ),
    ] = None,
    allow_outside_data: Annotated[
        bool,
        typer.Option(
            help="Read videos that resolve outside the data file's folder (absolute paths, "
            "'..', links out); refused by default"
        ),
    ] = False,
    demo: Annotated[
        Path | None,
        typer.Option(
            help="Write the embedded rule data and a tiny random critic into this directory, "
            "then train on them (ignores --data/--model/--out/--eval)"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Fine-tune a LoRA on the vlm critic from human ratings ("<Label>. <reason>" answers).

    The adapter in OUT loads with `lift critic serve --backend vlm --model DIR --adapter OUT`
    and `lift hra eval --critic vlm:DIR:OUT`; OUT/train_log.jsonl has the loss and the
    agreement on --eval per epoch.
    """
    from dataclasses import asdict

    with needs_extra("critic", "lift critic train"):
        import accelerate  # noqa: F401  (checked here: the run needs it)
        import tqdm  # noqa: F401

        from lift.services.critic.training.train import (
            TrainConfig,
            TrainDataError,
            TrainError,
            train,
        )
    if demo is not None:
        from lift.services.critic.backends.vlm.tiny import write_tiny_critic

        own: tuple[str, ...] = ("data", "model", "out", "eval_file", "epochs", "lr", "rank")
        own += ("alpha", "batch_size", "seed", "grad_accum", "num_frames", "templates")
        given = [  # (typer's click is its own: the source compared by name)
            "--" + name.replace("_", "-").removesuffix("-file")
            for name in (*own, "train_projector")
            if getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
        ]
        if given:
            fail(
                f"--demo sets its own data, model and run; drop {', '.join(given)} (or train "
                "without --demo)",
                code=2,
            )
        from lift.services.critic.training.rule_data import write_rule_data

        if demo.exists() and not demo.is_dir():
            fail(f"--demo {demo} is a file; give a directory", code=2)
        data, eval_file = write_rule_data(demo / "data", DEMO_TRAIN_CLIPS, DEMO_TEST_CLIPS)
        model = demo / "tiny-critic"
        if not (model / "config.json").is_file():
            write_tiny_critic(model)
        out = demo / "adapter"
        if (out / "checkpoints").is_dir():  # an earlier demo's run: the demo starts afresh
            import shutil

            shutil.rmtree(out / "checkpoints")
        epochs, lr, rank, alpha, batch_size, seed = 14, 2e-3, 8, 16, 8, 0
        typer.echo(
            f"demo: rule data in {demo / 'data'} ({DEMO_TRAIN_CLIPS} training clips, "
            f"{DEMO_TEST_CLIPS} held out), tiny random critic in {model}",
            err=True,
        )
    missing = [n for n, v in (("--data", data), ("--model", model), ("--out", out)) if v is None]
    if missing:
        fail(f"give {', '.join(missing)} (or --demo DIR)", code=2)
    assert data is not None and model is not None and out is not None
    for name, path in (("--data", data), ("--eval", eval_file)):
        if path is not None and not path.is_file():
            fail(f"{name} {path}: no such file", code=2)
    if not model.is_dir():
        fail(f"--model {model}: not a directory; give a critic checkpoint directory", code=2)
    config = TrainConfig(
        data=data,
        model=model,
        out=out,
        eval=eval_file,
        epochs=epochs,
        lr=lr,
        rank=rank,
        alpha=alpha,
        batch_size=batch_size,
        grad_accum=grad_accum,
        num_frames=num_frames,
        templates=templates,
        seed=seed,
        resume=resume,
        device=device,
        dtype=dtype,
        allow_outside_data=allow_outside_data,
        train_projector=train_projector,
    )
    try:
        summary = train(config, echo=lambda s: typer.echo(s, err=True))
    except (TrainError, TrainDataError) as exc:
        fail(str(exc), code=2)
    except (OSError, ValueError) as exc:  # the checkpoint: not a supported family, unreadable
        fail(f"cannot train on --model {model}: {exc}", code=2)
    if not summary.main_process:  # a multi-process launch: the main process reports
        return
    if as_json:
        typer.echo(json.dumps(asdict(summary), indent=2))
        return
    typer.echo(
        f"trained a LoRA on {summary.family} ({summary.trainable_parameters} trainable "
        f"parameters) over {summary.examples} ratings, {summary.steps} steps; wrote {out}"
    )
    if summary.before is not None and summary.after is not None:
        typer.echo("agreement on --eval, before -> after:")
        for dim, before in summary.before["dimensions"].items():
            after = summary.after["dimensions"][dim]
            typer.echo(f"  {dim:<22} {_pct(before):>6} -> {_pct(after):>6}")
        typer.echo(
            f"  {'average':<22} {_pct(summary.before['average']):>6} -> "
            f"{_pct(summary.after['average']):>6}"
        )
    typer.echo(
        f"serve it: lift critic serve --backend vlm --model {model} --adapter {out}"
        + (f" --templates {templates}" if templates else "")
    )
