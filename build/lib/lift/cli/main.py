"""`lift`: serve the services, critique videos, and developer tools.

Heavy modules are imported inside commands so that `lift --help` is instant.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from lift.cli.generator import generate, generator_app, tiny_generator
from lift.cli.hra import hra_app
from lift.cli.trainer import align, trainer_app, up

app = typer.Typer(
    help="LiFT suite: text-to-video critic, generator and trainer.", no_args_is_help=True
)
critic_app = typer.Typer(help="The critic service.", no_args_is_help=True)
debug_app = typer.Typer(help="Developer tools.", no_args_is_help=True)
tiny_app = typer.Typer(help="Write tiny random checkpoints (tests, demos).", no_args_is_help=True)
app.add_typer(critic_app, name="critic")
app.add_typer(generator_app, name="generator")
app.add_typer(trainer_app, name="trainer")
app.command("align")(align)
app.command("up")(up)
app.command("generate")(generate)
app.add_typer(debug_app, name="debug")
app.add_typer(hra_app, name="hra")
debug_app.add_typer(tiny_app, name="tiny-model")
tiny_app.command("generator")(tiny_generator)

ModelOpt = Annotated[
    Path | None, typer.Option(help="Checkpoint directory of the video VLM (vlm, composite)")
]
AdapterOpt = Annotated[Path | None, typer.Option(help="peft LoRA adapter directory")]
TemplatesOpt = Annotated[
    Path | None, typer.Option(help="Instruction template file (TOML) [default built-in LiFT]")
]


def _settings_error(exc: Exception) -> typer.Exit:
    typer.secho(f"invalid critic settings: {exc}", fg="red", err=True)
    return typer.Exit(2)


@critic_app.command("export")
def critic_export(
    model: Annotated[Path, typer.Option(help="Critic checkpoint directory (Qwen2-VL family)")],
    out: Annotated[Path, typer.Option(help="Directory for vision.onnx and vision.json")],
) -> None:
    """Export the critic's vision tower + projector to ONNX (dynamic batch) for onnx/triton."""
    from lift.errors import LiftError
    from lift.services.critic.backends.vlm.vision_graph import export

    try:
        path = export(model, out)
    except (LiftError, OSError, ValueError) as exc:
        typer.secho(f"export failed: {getattr(exc, 'message', exc)}", fg="red", err=True)
        raise typer.Exit(2) from None
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
) -> None:
    """Run the critic: gRPC and HTTP in one process (settings also from LIFT_CRITIC_* env)."""
    import asyncio

    from pydantic import ValidationError

    from lift.services.critic.server import build_critic
    from lift.services.critic.settings import CriticSettings

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "grpc_port": grpc_port,
            "http_port": http_port,
            "host": host,
            "backend": backend,
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
        }.items()
        if v is not None
    }
    try:
        settings = CriticSettings(**overrides)
    except ValidationError as exc:
        raise _settings_error(exc) from None
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def main() -> None:
        runner = build_critic(settings)
        await runner.run_forever()

    try:
        asyncio.run(main())
    except (OSError, ValueError) as exc:
        typer.secho(f"critic could not start: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None


@app.command("critique")
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

    def fail(name: str, message: str) -> None:
        nonlocal failures
        failures += 1
        typer.secho(f"{name}: {message}", fg="red", err=True)

    if server:
        from lift.client import CriticClient, CriticError

        with CriticClient(server) as client:
            for v in videos:
                try:
                    show(v, client.critique(v, prompt))
                except (CriticError, OSError) as exc:
                    fail(v, str(exc))
    else:
        from pydantic import ValidationError

        from lift.errors import LiftError
        from lift.services.critic.engine import CriticEngine, VideoSource
        from lift.services.critic.settings import CriticSettings
        from lift.serving import Deadline

        try:
            settings = CriticSettings(
                backend=backend, model=model, adapter=adapter, templates=templates
            )
        except ValidationError as exc:
            raise _settings_error(exc) from None
        engine = CriticEngine(settings)
        try:
            engine.load()
        except (OSError, ValueError) as exc:
            typer.secho(f"could not load the critic: {exc}", fg="red", err=True)
            raise typer.Exit(1) from None
        for v in videos:
            try:
                show(v, engine.critique(VideoSource.from_arg(v), prompt, Deadline()))
            except (LiftError, OSError) as exc:
                fail(v, getattr(exc, "message", str(exc)))
    if failures:
        raise typer.Exit(1)


@debug_app.command("samples")
def debug_samples(
    directory: Annotated[Path, typer.Argument(help="Where to write the sample mp4 files")],
) -> None:
    """Write the clean sample clip and its defect twins (49 frames, 480x720, 8 fps, H.264)."""
    from lift.video.samples import write_samples

    for path in write_samples(directory):
        typer.echo(str(path))


@tiny_app.command("critic")
def tiny_critic(
    directory: Annotated[Path, typer.Argument(help="Where to write the checkpoint")],
    adapter: Annotated[
        Path | None, typer.Option(help="Also write a random LoRA adapter for it here")
    ] = None,
    seed: Annotated[int, typer.Option(help="Weight seed")] = 0,
    family: Annotated[str, typer.Option(help="qwen2_vl or qwen2_5_vl")] = "qwen2_vl",
) -> None:
    """Write a tiny random Qwen2-VL critic checkpoint (loads with --backend vlm --model DIR)."""
    from lift.services.critic.backends.vlm.tiny import write_tiny_critic, write_tiny_lora

    try:
        write_tiny_critic(directory, seed=seed, family=family)
    except ValueError as exc:
        typer.secho(f"--family: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"tiny critic checkpoint: {directory}")
    if adapter is not None:
        write_tiny_lora(directory, adapter)
        typer.echo(f"tiny LoRA adapter: {adapter}")


if __name__ == "__main__":
    app()
