"""`lift feedback sample`: prompts through a (tiny) generator into the rating queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lift.auth import Scope, add_token
from lift.cli.main import app as cli
from lift.runner import start_in_thread
from lift.services.feedback.queue import import_source
from lift.services.feedback.server import build_feedback
from lift.services.feedback.settings import FeedbackSettings
from lift.services.feedback.store import Store
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings

SHAPE = ["--num-frames", "5", "--height", "32", "--width", "48", "--steps", "2"]


@pytest.fixture(scope="module")
def generator(tiny_generator_dir):
    settings = GeneratorSettings(
        model=tiny_generator_dir, grpc_port=0, http_port=0, log_level="WARNING"
    )
    runner, stop = start_in_thread(build_generator, settings)
    yield f"127.0.0.1:{runner.grpc_port}"
    stop()


def _prompts(tmp_path: Path) -> Path:
    p = tmp_path / "prompts.jsonl"
    rows = [
        {"id": "p0", "prompt": "a dog", "detailed": "a brown dog runs along a beach at dawn"},
        {"id": "p1", "prompt": "a cat", "detailed": "a grey cat sleeps on a windowsill"},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_sample_to_a_folder_then_import(generator: str, tmp_path: Path) -> None:
    out = tmp_path / "sampled"
    args = ["feedback", "sample", "--prompts", str(_prompts(tmp_path)), "--generator", generator]
    args += SHAPE
    r = CliRunner().invoke(cli, [*args, "--seeds", "2", "--out", str(out)])
    assert r.exit_code == 0, r.output
    records = [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]
    assert [(x["id"], x["seed"]) for x in records] == [("p0", 0), ("p0", 1), ("p1", 0), ("p1", 1)]
    assert records[0]["prompt"] == "a brown dog runs along a beach at dawn"  # the detailed text
    # a second run resumes: nothing is generated again
    again = CliRunner().invoke(cli, [*args, "--seeds", "2", "--out", str(out)])
    assert again.exit_code == 0 and "0 videos generated" in again.output
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "data")
    report = import_source(store, out / "items.jsonl", 10**8, 4000)
    assert report.added == 4 and report.skipped == []
    assert len({i.video_sha256 for i in store.items()}) == 4  # seeds give different videos
    assert {i.prompt for i in store.items()} == {r["prompt"] for r in records}


def test_sample_uploads_to_a_running_service(generator: str, tmp_path: Path, monkeypatch) -> None:
    tokens = tmp_path / "tokens.json"
    admin = add_token(tokens, "sampler", [Scope.ADMIN, Scope.GENERATE])
    settings = FeedbackSettings(
        data=tmp_path / "fb", http_port=0, auth_file=tokens, log_level="WARNING"
    )
    runner, stop = start_in_thread(build_feedback, settings)
    try:
        url = f"http://127.0.0.1:{runner.http_port}"
        args = ["feedback", "sample", *SHAPE, "--prompts", str(_prompts(tmp_path)), "--generator"]
        monkeypatch.setenv("LIFT_TOKEN", "lift_wrong")
        r = CliRunner().invoke(cli, [*args, generator, "--feedback", url])
        assert r.exit_code == 1 and "401" in r.output
        assert runner.engine.store.items() == []  # type: ignore[attr-defined]
        monkeypatch.setenv("LIFT_TOKEN", admin)
        r = CliRunner().invoke(cli, [*args, generator, "--feedback", url])
        assert r.exit_code == 0, r.output
        items = runner.engine.store.items()  # type: ignore[attr-defined]
        assert [i.source for i in items] == ["upload", "upload"]
        assert items[0].prompt == "a brown dog runs along a beach at dawn"
        assert runner.engine.store.video_file(items[0]).is_file()  # type: ignore[attr-defined]
    finally:
        stop()
