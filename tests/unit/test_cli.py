"""The CLI's help texts, the example run config, the schema command and `lift align`'s report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import typer
from typer.testing import CliRunner

from lift.cli import trainer as trainer_cli
from lift.cli.main import app
from lift.runs import Event, StepMetrics
from lift.services.trainer.config import RunConfig, parse_run_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "run-config.yaml"

# A repository path in a help text: a top-level folder of the repository, then more path.
_PATH = re.compile(
    r"(?<![\w/.~-])((?:docs|examples|deploy|protos|services|scripts|tools|tests|benchmarks|lift)"
    r"/[\w./-]*[\w/])"
)


def _help_texts(cmd: Any, path: str = "lift") -> Iterator[tuple[str, str]]:
    """(command path, text) for every help string of every command and parameter.

    Duck-typed over typer's command objects (recent typer vendors its own click).
    """
    for text in (cmd.help, cmd.short_help, cmd.epilog):
        if text:
            yield path, str(text)
    for p in cmd.params:
        if getattr(p, "help", None):
            yield f"{path} {(getattr(p, 'opts', None) or [p.name])[0]}", str(p.help)
    for name, sub in (getattr(cmd, "commands", None) or {}).items():
        yield from _help_texts(sub, f"{path} {name}")


def _missing_paths(texts: Iterator[tuple[str, str]]) -> list[str]:
    return [
        f"{where}: {m}"
        for where, text in texts
        for m in _PATH.findall(text)
        if not (ROOT / m).exists()
    ]


def test_help_texts_point_only_at_files_that_exist() -> None:
    texts = list(_help_texts(typer.main.get_command(app)))
    assert len(texts) > 50  # the walk reached the options of every command
    found = [m for _, t in texts for m in _PATH.findall(t)]
    assert "examples/run-config.yaml" in found  # the scan sees real references
    assert _missing_paths(iter(texts)) == []


def test_the_help_scan_catches_a_missing_file() -> None:
    texts = [("lift align --config", "Run config (YAML or JSON); see docs/trainer.md")]
    assert _missing_paths(iter(texts)) == ["lift align --config: docs/trainer.md"]


def test_example_run_config_passes_the_real_parser() -> None:
    config = parse_run_config(EXAMPLE.read_text(encoding="utf-8"))
    assert config.mode == "online" and config.prompts and config.eval.prompts
    assert config.generator is not None and config.generator.address == "localhost:50052"


def test_schema_command_prints_the_run_config_schema() -> None:
    r = CliRunner().invoke(app, ["trainer", "schema"])
    assert r.exit_code == 0, r.output
    schema = json.loads(r.stdout)
    assert schema == RunConfig.model_json_schema()
    assert set(schema["properties"]) == set(RunConfig.model_fields)


class _OneVideoTrainer:
    """Stands in for the in-process trainer: a run whose evaluation had one paired video."""

    instances: ClassVar[list[_OneVideoTrainer]] = []

    def __init__(self, data_dir: Path | None, roots: list[Path]) -> None:
        self.started: dict[str, Any] = {}
        self.closed = False
        _OneVideoTrainer.instances.append(self)

    def _run(self, state: str, step: int) -> dict[str, Any]:
        result = {
            "reward_before": 0.2,
            "reward_after": 0.3,
            "gain": 0.1,
            "ci95": None,  # one video: no interval
            "significant": None,
            "n": 1,
            "guards": {"dynamic_degree": {"before": 0.9, "after": None}},
            "warnings": [],
            "adapter_dir": "/tmp/adapter",
            "adapter_version": "run-1-2",
        }
        return {
            "id": "run-1",
            "name": "one-video",
            "state": state,
            "step": step,
            "total_steps": 2,
            "reason": "",
            "result": result if state == "succeeded" else None,
        }

    def start_run(self, config: str) -> dict[str, Any]:
        self.started = json.loads(config)
        return self._run("queued", 0)

    def watch(self, run_id: str, after_seq: int = 0) -> Iterator[Event]:
        for step in (1, 2):
            m = StepMetrics(step, 1.0, 1.0, None, 0.25, {}, 0.9, None, 0.1, 1e-3, 2, 0, 0.5, 4.0)
            yield Event(run_id, step, 0.0, "step", step, "", m.to_json())
        yield Event(run_id, 3, 0.0, "eval", 2, "held-out reward 0.2 -> 0.3 (1 video)", {})
        yield Event(run_id, 4, 0.0, "state", 2, "", {"state": "succeeded"})

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._run("succeeded", 2)

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        return self._run("cancelled", 1)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("as_json", [True, False])
def test_align_reports_a_run_with_one_eval_video(
    as_json: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ci95 is None with one paired video: the report says so instead of crashing."""
    monkeypatch.setattr(trainer_cli, "_LocalTrainer", _OneVideoTrainer)
    args = ["align", "--config", str(EXAMPLE), "--steps", "2", "--plot", str(tmp_path / "p.png")]
    r = CliRunner().invoke(app, [*args, *(["--json"] if as_json else [])])
    assert r.exit_code == 0, r.output
    trainer = _OneVideoTrainer.instances[-1]
    assert trainer.started["steps"] == 2 and trainer.closed
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    if as_json:
        summary = json.loads(r.stdout)  # stdout is the JSON object and nothing else
        assert summary["ci95"] is None and summary["n"] == 1 and summary["gain"] == 0.1
        assert summary["plot"] == str(tmp_path / "p.png")
        assert "run-1" in r.stderr  # progress and messages went to stderr
    else:
        text = " ".join(r.stdout.split())  # rich wraps long lines
        assert "gain +0.1000 over 1 paired video (no interval from one video)" in text
        assert "guard dynamic_degree: 0.9000 → n/a" in text


_WITHOUT_EXTRAS = """
import sys
from importlib.abc import MetaPathFinder

class _NotInstalled(MetaPathFinder):
    # What a base install (no extras) lacks: importing it fails as it would there.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"torch", "transformers", "diffusers", "av", "cv2"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
from lift.cli.main import app
app(prog_name="lift")
"""


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["critic", "serve", "--grpc-port", "0", "--http-port", "0"], "critic"),
        (["critique", "clip.mp4", "--prompt", "a dog"], "critic"),
        (["generator", "serve"], "generator"),
        (["trainer", "serve"], "trainer"),
        (["debug", "tiny-model", "generator", "out"], "generator"),
        (["up"], "all"),
    ],
)
def test_a_command_without_its_extra_names_the_extra(
    args: list[str], extra: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 3, r.stderr[-2000:]
    assert f"pip install 'lift-suite[{extra}]'" in " ".join(r.stderr.split())
    assert "Traceback" not in r.stderr


def test_lift_up_points_the_trainer_at_the_ports_it_gives_the_services(monkeypatch) -> None:
    from lift.cli import up

    monkeypatch.setenv("LIFT_GENERATOR_GRPC_PORT", "61052")
    monkeypatch.setenv("LIFT_CRITIC_GRPC_PORT", "61051")
    monkeypatch.delenv("LIFT_TRAINER_GENERATOR_ADDRESS", raising=False)
    monkeypatch.setenv("LIFT_TRAINER_CRITIC_ADDRESS", "critic.internal:9000")  # operator's wins
    env = up._trainer_env(up._services())
    assert env["LIFT_TRAINER_GENERATOR_ADDRESS"] == "127.0.0.1:61052"
    assert env["LIFT_TRAINER_CRITIC_ADDRESS"] == "critic.internal:9000"

    from lift.services.trainer.settings import TrainerSettings

    monkeypatch.setenv("LIFT_TRAINER_GENERATOR_ADDRESS", env["LIFT_TRAINER_GENERATOR_ADDRESS"])
    assert "127.0.0.1:61052" in TrainerSettings().endpoints()


def test_invalid_settings_are_one_line_per_problem_without_pydantic_dumps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad flag or variable names the setting and what is wrong, not pydantic's report."""
    monkeypatch.setenv("LIFT_CRITIC_MAX_VIDEO_BYTES", "-5")
    result = CliRunner().invoke(app, ["critic", "serve", "--batch-max-size", "0"])
    assert result.exit_code == 2
    text = result.output
    assert "invalid critic settings:" in text
    assert "batch_max_size:" in text and "max_video_bytes:" in text
    assert "errors.pydantic.dev" not in text and "input_value" not in text
