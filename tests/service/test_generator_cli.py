"""`lift generate`, `lift generator load-adapter` and `lift debug tiny-model generator`."""

from __future__ import annotations

import io

import av
import pytest
from typer.testing import CliRunner

from lift.cli.main import app
from lift.runner import start_in_thread
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings

SHAPE = ["--num-frames", "5", "--height", "32", "--width", "48", "--steps", "2"]


def frame_shape(path) -> tuple[int, int, int]:
    with av.open(io.BytesIO(path.read_bytes())) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return (len(frames), *frames[0].shape[:2])


@pytest.fixture(scope="module")
def server(tiny_generator_dir):
    settings = GeneratorSettings(
        model=tiny_generator_dir, grpc_port=0, http_port=0, log_level="WARNING"
    )
    runner, stop = start_in_thread(build_generator, settings)
    yield f"127.0.0.1:{runner.grpc_port}"
    stop()


def test_tiny_model_command_writes_a_loadable_pipeline_and_adapter(tmp_path) -> None:
    r = CliRunner().invoke(
        app,
        ["debug", "tiny-model", "generator", str(tmp_path / "p"), "--adapter", str(tmp_path / "a")],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "p" / "model_index.json").is_file()
    assert (tmp_path / "a" / "adapter_model.safetensors").is_file()
    out = tmp_path / "v.mp4"
    r = CliRunner().invoke(
        app,
        [
            "generate",
            "--prompt",
            "a dog",
            "--out",
            str(out),
            "--model",
            str(tmp_path / "p"),
            "--seed",
            "3",
            *SHAPE,
        ],
    )
    assert r.exit_code == 0, r.output
    assert frame_shape(out) == (5, 32, 48) and "seed 3" in r.output


def test_generate_through_the_server_and_swap_an_adapter(server, generator_loras, tmp_path) -> None:
    out = tmp_path / "remote.mp4"
    r = CliRunner().invoke(
        app, ["generate", "--prompt", "a cat", "--out", str(out), "--server", server, *SHAPE]
    )
    assert r.exit_code == 0, r.output
    assert frame_shape(out) == (5, 32, 48) and "adapter base" in r.output
    r = CliRunner().invoke(
        app,
        [
            "generator",
            "load-adapter",
            str(generator_loras[0]),
            "--version",
            "cli-1",
            "--server",
            server,
        ],
    )
    assert r.exit_code == 0, r.output
    assert "cli-1 installed" in r.output and "default stays base" in r.output
    gen = ["generate", "--prompt", "a cat", "--out", str(out), "--server", server, *SHAPE]
    assert "adapter base" in CliRunner().invoke(app, gen).output  # loaded, not yet served
    r = CliRunner().invoke(app, ["generator", "promote", "cli-1", "--server", server])
    assert r.exit_code == 0 and "default adapter version: cli-1 (was base)" in r.output
    assert "adapter cli-1" in CliRunner().invoke(app, gen).output


def test_bad_input_exits_with_the_reason(server, tmp_path) -> None:
    r = CliRunner().invoke(
        app,
        [
            "generate",
            "--prompt",
            "a cat",
            "--out",
            str(tmp_path / "x.mp4"),
            "--server",
            server,
            "--height",
            "33",
        ],
    )
    assert r.exit_code == 1 and "INVALID_ARGUMENT" in r.output and "even" in r.output
    assert not (tmp_path / "x.mp4").exists()
    r = CliRunner().invoke(
        app, ["generator", "load-adapter", str(tmp_path), "--version", "v", "--server", server]
    )
    assert r.exit_code == 1 and "adapter_model.safetensors" in r.output
