"""`lift debug samples` and `lift debug tiny-model critic|generator`: developer tools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lift.cli.common import fail, needs_extra

debug_app = typer.Typer(help="Developer tools.", no_args_is_help=True)
tiny_app = typer.Typer(help="Write tiny random checkpoints (tests, demos).", no_args_is_help=True)
debug_app.add_typer(tiny_app, name="tiny-model")


@debug_app.command("samples")
def debug_samples(
    directory: Annotated[Path, typer.Argument(help="Where to write the sample mp4 files")],
) -> None:
    """Write the clean sample clip and its defect twins (49 frames, 480x720, 8 fps, H.264)."""
    with needs_extra("critic", "lift debug samples"):
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
    family: Annotated[
        str,
        typer.Option(
            help="qwen2_vl, qwen2_5_vl, vila (VILA1.5-13b layout), vila-40b (InternViT tower) "
            "or videoalign (VideoReward layout; its tiny base Qwen2-VL in DIR/base)"
        ),
    ] = "qwen2_vl",
) -> None:
    """Write a tiny random critic checkpoint in a published layout (loads with --backend vlm --model DIR)."""
    with needs_extra("critic", "lift debug tiny-model critic"):
        if family == "videoalign":
            from lift.services.critic.backends.vlm.tiny_videoalign import write_tiny_videoalign

            if adapter is not None:
                fail("--adapter: a VideoAlign checkpoint holds its LoRA in checkpoint-N/", code=2)
            write_tiny_videoalign(directory, seed=seed)
            typer.echo(f"tiny VideoReward checkpoint: {directory} (reward_head protocol)")
            return
        if family in ("vila", "vila-40b"):
            from lift.services.critic.backends.vlm.tiny_vila import (
                write_tiny_vila,
                write_tiny_vila_lora,
            )

            big = family == "vila-40b"
            write_tiny_vila(directory, seed=seed, tower="intern" if big else "siglip")
            preset = "lift-40b" if big else "lift-13b"
            typer.echo(f"tiny VILA-1.5 checkpoint: {directory} (serve with --templates {preset})")
            if adapter is not None:
                write_tiny_vila_lora(directory, adapter)
                typer.echo(f"tiny LiFT-style LoRA directory: {adapter}")
            return
        from lift.services.critic.backends.vlm.tiny import write_tiny_critic, write_tiny_lora

        try:
            write_tiny_critic(directory, seed=seed, family=family)
        except ValueError as exc:
            fail(f"--family: {exc} (or vila, vila-40b, videoalign)", code=2)
        typer.echo(f"tiny critic checkpoint: {directory}")
        if adapter is not None:
            write_tiny_lora(directory, adapter)
            typer.echo(f"tiny LoRA adapter: {adapter}")


@tiny_app.command("generator")
def tiny_generator(
    directory: Annotated[Path, typer.Argument(help="Where to write the pipeline")],
    adapter: Annotated[
        Path | None, typer.Option(help="Also write a random LoRA adapter for it here")
    ] = None,
    seed: Annotated[int, typer.Option(help="Weight seed")] = 0,
) -> None:
    """Write the tiny random CogVideoX pipeline (the generator's demo model)."""
    with needs_extra("generator", "lift debug tiny-model generator"):
        from lift.t2v.tiny import write_tiny_generator, write_tiny_lora

        write_tiny_generator(directory, seed=seed)
        typer.echo(f"tiny generator pipeline: {directory}")
        if adapter is not None:
            write_tiny_lora(directory, adapter)
            typer.echo(f"tiny LoRA adapter: {adapter}")
