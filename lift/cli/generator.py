"""`lift generator serve|load-adapter|promote` and `lift generate`."""

from __future__ import annotations

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

generator_app = typer.Typer(help="The generator service.", no_args_is_help=True)

ModelOpt = Annotated[
    Path | None,
    typer.Option(help="diffusers pipeline directory (model_index.json) [default: the demo model]"),
]


def generator_settings(overrides: dict[str, Any]) -> Any:
    """GeneratorSettings from the given flags (exit 2 on invalid values)."""
    with needs_extra("generator", "the generator"):  # its settings already need video decoding
        from lift.services.generator.settings import GeneratorSettings

    return settings_or_exit("generator", GeneratorSettings, overrides)


@generator_app.command("serve")
def generator_serve(
    model: ModelOpt = None,
    grpc_port: Annotated[int | None, typer.Option(help="gRPC port [default 50052]")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP port [default 8081]")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address [default 127.0.0.1]")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, float32, bfloat16, float16")] = None,
    offload: Annotated[
        str | None, typer.Option(help="none, or model (CPU offload between components; CUDA)")
    ] = None,
    adapter_root: Annotated[
        Path | None, typer.Option(help="Directory file:// adapter URIs may read from")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where the demo model is written [~/.cache/lift]")
    ] = None,
) -> None:
    """Run the generator: gRPC and HTTP in one process (settings also from LIFT_GENERATOR_*)."""
    settings = generator_settings(
        {
            "model": model,
            "grpc_port": grpc_port,
            "http_port": http_port,
            "host": host,
            "device": device,
            "dtype": dtype,
            "offload": offload,
            "adapter_root": adapter_root,
            "cache_dir": cache_dir,
        }
    )
    with needs_extra("generator", "lift generator serve"):
        from lift.services.generator.server import build_generator

        run_service("generator", settings, build_generator)


@generator_app.command("load-adapter")
def load_adapter(
    adapter: Annotated[str, typer.Argument(help="peft adapter directory, or a file:// URI")],
    version: Annotated[str, typer.Option(help="New version label for the adapter")],
    server: Annotated[str, typer.Option(help="Generator gRPC address")] = "127.0.0.1:50052",
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
    pin: Annotated[
        bool, typer.Option("--pin", help="Never unload this version to make room for newer ones")
    ] = False,
) -> None:
    """Install a LoRA adapter on a running generator (no restart).

    It serves requests that name its version; what callers naming none get changes
    only with `lift generator promote VERSION`.
    """
    from lift.client import GeneratorClient, GeneratorError

    try:
        with GeneratorClient(
            server, credentials=credentials(token, tls, ca_file, client_cert, client_key)
        ) as client:
            r = client.load_adapter(version, adapter, pin=pin)
    except (GeneratorError, OSError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    evicted = r.get("evicted_versions") or []
    typer.echo(
        f"adapter {r['version']} installed ({r['modules']} modules, rank {r['rank']}, "
        f"{r['load_ms']:.0f} ms{', pinned' if r.get('pinned') else ''}); default stays "
        f"{r['previous_version']}{'; unloaded ' + ', '.join(evicted) if evicted else ''}"
    )


@generator_app.command("promote")
def promote(
    version: Annotated[
        str, typer.Argument(help='A loaded adapter version, or "base" for the model without one')
    ],
    server: Annotated[str, typer.Option(help="Generator gRPC address")] = "127.0.0.1:50052",
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
) -> None:
    """Make VERSION what every request that names no adapter version gets."""
    from lift.client import GeneratorClient, GeneratorError

    try:
        with GeneratorClient(
            server, credentials=credentials(token, tls, ca_file, client_cert, client_key)
        ) as client:
            r = client.promote(version)
    except (GeneratorError, OSError) as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"default adapter version: {r['version']} (was {r['previous_version']})")


def generate(
    prompt: Annotated[str, typer.Option(help="What the video should show")],
    out: Annotated[Path, typer.Option(help="Where to write the mp4")],
    server: Annotated[
        str | None, typer.Option(help="Generator gRPC address; default: generate in-process")
    ] = None,
    model: ModelOpt = None,
    negative_prompt: Annotated[str, typer.Option(help="What it should not show")] = "",
    seed: Annotated[int | None, typer.Option(help="Noise seed [random, reported]")] = None,
    num_frames: Annotated[int | None, typer.Option(help="Frames [model default]")] = None,
    height: Annotated[int | None, typer.Option(help="Height, px [model default]")] = None,
    width: Annotated[int | None, typer.Option(help="Width, px [model default]")] = None,
    steps: Annotated[int | None, typer.Option(help="Denoising steps [model default]")] = None,
    guidance_scale: Annotated[float | None, typer.Option(help="Guidance scale")] = None,
    fps: Annotated[float | None, typer.Option(help="Frame rate of the file")] = None,
    adapter_version: Annotated[
        str, typer.Option(help='Adapter version ("" the default, "base" none)')
    ] = "",
    token: TokenOpt = None,
    tls: TlsOpt = False,
    ca_file: CaFileOpt = None,
    client_cert: ClientCertOpt = None,
    client_key: ClientKeyOpt = None,
) -> None:
    """Generate a video from a prompt and write it as H.264 mp4 (progress bar on stderr)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from lift.generation import GeneratedVideo, GenerationRequest
    from lift.generation import Progress as Event

    req = GenerationRequest(
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        num_frames=num_frames,
        height=height,
        width=width,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        fps=fps,
        adapter_version=adapter_version,
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),  # stdout carries only the result line
    ) as bar:
        task = bar.add_task("queued", total=None)

        def show(e: Event) -> None:
            bar.update(task, description=e.stage.value, completed=e.step, total=e.total_steps)

        video: GeneratedVideo = (
            _generate_remote(
                server, req, show, credentials(token, tls, ca_file, client_cert, client_key)
            )
            if server
            else _generate_local(model, req, show)
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(video.data)
    m = video.metadata
    typer.echo(
        f"{out}: {m.num_frames} frames {m.width}x{m.height} at {m.fps:g} fps, seed {m.seed}, "
        f"{m.num_inference_steps} steps, adapter {m.adapter_version}, model {m.model_version}, "
        f"{m.timings.total_ms / 1000:.1f} s"
    )


def _generate_remote(server: str, req: Any, show: Any, creds: Any) -> Any:
    from lift.client import GeneratorClient, GeneratorError

    try:
        with GeneratorClient(server, credentials=creds) as client:
            return client.generate(req, on_progress=show)
    except GeneratorError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from None


def _generate_local(model: Path | None, req: Any, show: Any) -> Any:
    from lift.errors import LiftError

    settings = generator_settings({"model": model})
    with needs_extra("generator", "lift generate without --server"):
        from lift.services.generator.engine import GeneratorEngine
        from lift.serving import Deadline

        engine = GeneratorEngine(settings)
        try:
            engine.load()
            return engine.generate(engine.resolve(req), Deadline(), show)
        except LiftError as exc:
            fail(f"{exc.code_name}: {exc.message}")
        except (OSError, ValueError) as exc:
            fail(f"could not load the generator: {exc}")
