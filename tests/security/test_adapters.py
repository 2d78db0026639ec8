"""Adapters cannot change what others are served (issue 16, item 6), replayed on loopback.

The attacks: anyone loading an adapter made it what every caller got; a cancelled
run's partial adapter stayed current; publishing evicted versions callers used; and
the trainer's adapters did not load with diffusers (``pipe.load_lora_weights(dir)``
warned "No LoRA keys" and applied nothing). Each test replays one and asserts the
refusal or the unchanged default. No tokens file: the services run open, as in
``make demo``, so these hold even for callers nobody authenticated.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import torch

from lift.client import GeneratorClient, GeneratorError
from lift.errors import Overloaded
from lift.generation import CONFIG_FILE, WEIGHTS_FILE, AdapterFiles, GenerationRequest
from lift.runner import start_in_thread
from lift.services.generator.engine import GeneratorEngine
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings
from lift.serving import Deadline

pytestmark = pytest.mark.timeout(600)

SMALL = {"num_frames": 5, "height": 32, "width": 32, "num_inference_steps": 2}


def frames_of(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def files(lora_dir: Path) -> AdapterFiles:
    return AdapterFiles(
        (lora_dir / WEIGHTS_FILE).read_bytes(), (lora_dir / CONFIG_FILE).read_text()
    )


def multipart(lora_dir: Path, version: str) -> dict[str, Any]:
    return {
        "data": {"version": version},
        "files": {
            "weights": ("adapter_model.safetensors", (lora_dir / WEIGHTS_FILE).read_bytes()),
            "config": ("adapter_config.json", (lora_dir / CONFIG_FILE).read_bytes()),
        },
    }


class Generator:
    """A generator service on ephemeral loopback ports."""

    def __init__(self, model: Path, **overrides: Any) -> None:
        settings = GeneratorSettings(
            model=model, grpc_port=0, http_port=0, log_level="WARNING", **overrides
        )
        runner, self._stop = start_in_thread(build_generator, settings)
        self.grpc = f"127.0.0.1:{runner.grpc_port}"
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{runner.http_port}", timeout=120)

    def video(self, version: str = "") -> tuple[str, np.ndarray]:
        """(adapter version used, frames) of a fixed request, as a caller naming ``version``."""
        body = {"prompt": "a dog runs", "seed": 3, "adapter_version": version, **SMALL}
        r = self.http.post("/v1/generations", json=body)
        assert r.status_code == 200, r.text
        return r.headers["x-lift-adapter-version"], frames_of(r.content)

    def default(self) -> str:
        return str(self.http.get("/v1/info").json()["current_adapter_version"])

    def close(self) -> None:
        self.http.close()
        self._stop()


@pytest.fixture(scope="module")
def gen(tiny_generator_dir: Path) -> Iterator[Generator]:
    g = Generator(tiny_generator_dir, adapter_keep=8)
    yield g
    g.close()


# -- loading is not serving ---------------------------------------------------------------


def test_anyone_loading_an_adapter_does_not_change_what_others_get(
    gen: Generator, generator_loras: list[Path]
) -> None:
    before_version, before = gen.video()
    assert before_version == gen.default()
    # The attack: an adapter sent by anyone, over both fronts.
    r = gen.http.post("/v1/adapters", **multipart(generator_loras[0], "evil-http"))
    assert r.status_code == 200, r.text
    assert r.json()["previous_version"] == before_version  # the default, unchanged
    with GeneratorClient(gen.grpc) as client:
        client.load_adapter("evil-grpc", generator_loras[1])
    version, after = gen.video()
    assert version == before_version and np.array_equal(after, before)
    assert gen.default() == before_version
    # ...while a caller who names the version does get it (it is loaded, not served).
    named, frames = gen.video("evil-http")
    assert named == "evil-http" and not np.array_equal(frames, before)


def test_promotion_changes_the_default_and_base_goes_back(
    gen: Generator, generator_loras: list[Path]
) -> None:
    from typer.testing import CliRunner

    from lift.cli.main import app

    assert gen.http.post("/v1/adapters/base:promote").status_code == 200
    _, base = gen.video("base")
    # A run's namespaced label holds "/": the HTTP route takes it whole.
    r = gen.http.post("/v1/adapters", **multipart(generator_loras[0], "run-7/s10"))
    assert r.status_code == 200, r.text
    r = gen.http.post("/v1/adapters/run-7/s10:promote")
    assert r.status_code == 200, r.text
    assert r.json() == {"version": "run-7/s10", "previous_version": "base"}
    version, promoted = gen.video()
    assert version == "run-7/s10" and not np.array_equal(promoted, base)
    # Nothing that is not loaded can be promoted; the default stays.
    r = gen.http.post("/v1/adapters/run-7/s999:promote")
    assert r.status_code == 404 and "not loaded" in r.json()["error"]["message"]
    with GeneratorClient(gen.grpc) as client, pytest.raises(GeneratorError) as err:
        client.promote("never-loaded")
    assert err.value.code == "NOT_FOUND" and gen.default() == "run-7/s10"
    # `lift generator promote base` goes back to the model without adapter.
    out = CliRunner().invoke(app, ["generator", "promote", "base", "--server", gen.grpc])
    assert out.exit_code == 0, out.output
    assert "default adapter version: base (was run-7/s10)" in out.output
    version, again = gen.video()
    assert version == "base" and np.array_equal(again, base)


# -- pinned versions are never evicted ------------------------------------------------------


def test_pinned_versions_survive_a_flood_of_loads(
    tiny_generator_dir: Path, generator_loras: list[Path]
) -> None:
    g = Generator(tiny_generator_dir, adapter_keep=3)
    try:
        for version, pin in (("prod", False), ("kept", True)):
            form = multipart(generator_loras[0], version)
            form["data"]["pin"] = "true" if pin else "false"
            assert g.http.post("/v1/adapters", **form).status_code == 200
        assert g.http.post("/v1/adapters/prod:promote").status_code == 200
        _, prod = g.video("prod")
        _, kept = g.video("kept")
        # The attack: a flood of new versions, more than the generator holds.
        evicted: list[str] = []
        for i in range(12):
            r = g.http.post("/v1/adapters", **multipart(generator_loras[i % 2], f"flood-{i}"))
            assert r.status_code == 200, r.text
            evicted += r.json()["evicted_versions"]
        assert "prod" not in evicted and "kept" not in evicted
        assert evicted == [f"flood-{i}" for i in range(11)]  # only unpinned ones went
        listing = g.http.get("/v1/adapters").json()
        assert listing["default_version"] == "prod"
        pins = {a["version"]: a["pinned"] for a in listing["adapters"]}
        assert pins == {"flood-11": False, "kept": True, "prod": True}
        assert np.array_equal(g.video()[1], prod) and np.array_equal(g.video("kept")[1], kept)
        # When every loaded version is pinned, a load is refused (429) and nothing goes.
        assert g.http.post("/v1/adapters/flood-11:pin").json() == {
            "version": "flood-11",
            "pinned": True,
        }
        r = g.http.post("/v1/adapters", **multipart(generator_loras[0], "one-too-many"))
        assert r.status_code == 429, r.text
        assert "every one is pinned" in r.json()["error"]["message"]
        with GeneratorClient(g.grpc) as client, pytest.raises(GeneratorError) as err:
            client.load_adapter("one-too-many", generator_loras[0])
        assert err.value.code == "RESOURCE_EXHAUSTED"
        assert [a["version"] for a in g.http.get("/v1/adapters").json()["adapters"]] == [
            "flood-11",
            "kept",
            "prod",
        ]
        # Unpinning makes room again.
        assert g.http.post("/v1/adapters/kept:unpin").json()["pinned"] is False
        r = g.http.post("/v1/adapters", **multipart(generator_loras[0], "one-more"))
        assert r.status_code == 200 and r.json()["evicted_versions"] == ["kept"]
    finally:
        g.close()


def test_a_version_a_waiting_generation_named_is_not_evicted(
    tiny_generator_dir: Path, generator_loras: list[Path]
) -> None:
    engine = GeneratorEngine(GeneratorSettings(model=tiny_generator_dir, adapter_keep=1))
    engine.load()
    engine.load_adapter("mine", files(generator_loras[0]))
    alone = engine.generate(
        engine.resolve(GenerationRequest("a cat", seed=1, adapter_version="mine", **SMALL)),
        Deadline(),
    )
    results: list[Any] = []
    engine._model_lock.acquire()  # a long generation ahead holds the model
    try:
        req = engine.resolve(GenerationRequest("a cat", seed=1, adapter_version="mine", **SMALL))
        waiting = threading.Thread(
            target=lambda: results.append(engine.generate(req, Deadline(60))), daemon=True
        )
        waiting.start()
        time.sleep(0.3)  # it now waits for the model, naming "mine"
        with pytest.raises(Overloaded, match="pinned"):
            engine.load_adapter("intruder", files(generator_loras[1]))
    finally:
        engine._model_lock.release()
    waiting.join(60)
    assert results and results[0].metadata.adapter_version == "mine"
    assert np.array_equal(frames_of(results[0].data), frames_of(alone.data))
    # Once nobody uses it, the unpinned version makes room as before.
    assert engine.load_adapter("intruder", files(generator_loras[1])).evicted_versions == ["mine"]


def test_a_version_a_queued_request_named_is_not_evicted(
    tiny_generator_dir: Path, generator_loras: list[Path]
) -> None:
    g = Generator(tiny_generator_dir, adapter_keep=1, workers=1, max_queue=4)
    try:
        assert (
            g.http.post("/v1/adapters", **multipart(generator_loras[0], "mine")).status_code == 200
        )
        _, alone = g.video("mine")
        slow = {
            "prompt": "a dog",
            "seed": 1,
            **{**SMALL, "height": 64, "width": 64, "num_inference_steps": 200},
        }
        with ThreadPoolExecutor(2) as pool:
            ahead = pool.submit(g.http.post, "/v1/generations", json=slow)
            time.sleep(0.3)  # the only worker is busy: the next request waits in the queue
            queued = pool.submit(g.video, "mine")
            time.sleep(0.3)
            r = g.http.post("/v1/adapters", **multipart(generator_loras[1], "intruder"))
            assert r.status_code == 429, r.text
            assert ahead.result().status_code == 200
            version, frames = queued.result()
        assert version == "mine" and np.array_equal(frames, alone)
        r = g.http.post("/v1/adapters", **multipart(generator_loras[1], "intruder"))
        assert r.status_code == 200 and r.json()["evicted_versions"] == ["mine"]
    finally:
        g.close()


# -- runs change the default only by asking, and only on success -----------------------------


@pytest.fixture(scope="module")
def stack(tiny_generator_dir: Path) -> Iterator[tuple[Generator, str]]:
    from lift.services.critic.server import build_critic
    from lift.services.critic.settings import CriticSettings

    critic, stop_critic = start_in_thread(
        build_critic, CriticSettings(grpc_port=0, http_port=0, log_level="WARNING")
    )
    g = Generator(tiny_generator_dir, adapter_keep=16)
    yield g, f"127.0.0.1:{critic.grpc_port}"
    g.close()
    stop_critic()


class FailingScores:
    """The real services, except that the critic's scores fail after ``ok`` batches."""

    def __init__(self, inner: Any, ok: int) -> None:
        self.inner, self.left = inner, ok

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def score(self, items: list[tuple[bytes, str]]) -> Any:
        from lift.services.trainer.remote import DependencyFailed

        if self.left <= 0:
            raise DependencyFailed("critic (fake) failed on purpose")
        self.left -= 1
        return self.inner.score(items)


def run_to_end(
    stack: tuple[Generator, str],
    tmp_path: Path,
    model: Path,
    config: dict[str, Any],
    *,
    cancel_after_publish: bool = False,
    fail_after: int | None = None,
) -> tuple[Any, list[Any]]:
    from lift.services.trainer import manager as manager_module
    from lift.services.trainer.manager import RunManager
    from lift.services.trainer.settings import TrainerSettings

    g, critic = stack
    cfg = {
        "model": str(model),
        "generator": {"address": g.grpc},
        "critic": {"address": critic},
        "prompts": ["a dog runs"],
        "sampling": {"num_frames": 5, "height": 32, "width": 32, "num_inference_steps": 2},
        "optimizer": {"lr": 1e-2},
        "batch_size": 1,
        "publish_every": 1,
        "checkpoint_every": 50,
        **config,
    }

    def deps(run_config: Any, stop: threading.Event) -> Any:
        real = manager_module.default_deps(run_config, stop)
        return real if fail_after is None else FailingScores(real, fail_after)

    settings = TrainerSettings(
        data_dir=tmp_path / "data",
        data_roots=[model.parent],
        allowed_endpoints=[g.grpc, critic],
    )
    manager = RunManager(settings, deps_factory=deps)
    manager.load()
    try:
        run = manager.start_run(json.dumps(cfg))
        cancelled = False
        deadline = time.monotonic() + 300
        while not manager.get_run(run.id).state.final and time.monotonic() < deadline:
            if (
                cancel_after_publish
                and not cancelled
                and any(e.kind == "publish" for e in manager.events(run.id))
            ):
                manager.cancel_run(run.id)
                cancelled = True
            time.sleep(0.1)
        return manager.get_run(run.id), manager.events(run.id)
    finally:
        manager.close()


def published(events: list[Any]) -> list[str]:
    return [e.data["version"] for e in events if e.kind == "publish"]


def test_runs_publish_in_their_namespace_and_change_the_default_only_on_asked_success(
    stack: tuple[Generator, str],
    tmp_path: Path,
    tiny_generator_dir: Path,
    generator_loras: list[Path],
) -> None:
    g, _ = stack
    # The operator's choice, which runs must not change unless asked.
    g.http.post("/v1/adapters", **multipart(generator_loras[0], "operator-pick"))
    assert g.http.post("/v1/adapters/operator-pick:promote").status_code == 200
    _, served = g.video()

    # A cancelled run that asked for promotion: the default stays.
    run, events = run_to_end(
        stack,
        tmp_path / "cancelled",
        tiny_generator_dir,
        {"steps": 200, "promote_on_success": True},
        cancel_after_publish=True,
    )
    assert run.state.value == "cancelled", run.reason
    assert published(events) and all(v.startswith(f"{run.id}/s") for v in published(events))
    assert g.default() == "operator-pick" and np.array_equal(g.video()[1], served)

    # A failed run that asked for promotion: the default stays.
    run, events = run_to_end(
        stack,
        tmp_path / "failed",
        tiny_generator_dir,
        {"steps": 4, "promote_on_success": True},
        fail_after=2,
    )
    assert run.state.value == "failed" and "on purpose" in run.reason
    assert len(published(events)) == 2
    assert g.default() == "operator-pick" and np.array_equal(g.video()[1], served)

    # A run that succeeds without asking: its versions load, the default stays.
    run, events = run_to_end(stack, tmp_path / "quiet", tiny_generator_dir, {"steps": 2})
    assert run.state.value == "succeeded", run.reason
    assert published(events) == [f"{run.id}/s1", f"{run.id}/s2"]
    assert g.default() == "operator-pick" and np.array_equal(g.video()[1], served)

    # A run that succeeds and asked: its last version becomes the default.
    run, events = run_to_end(
        stack, tmp_path / "promoted", tiny_generator_dir, {"steps": 2, "promote_on_success": True}
    )
    assert run.state.value == "succeeded", run.reason
    assert run.adapter_version == f"{run.id}/s2" == g.default()
    assert any("promoted adapter version" in e.message for e in events)
    version, frames = g.video()
    assert version == run.adapter_version and not np.array_equal(frames, served)


def test_promote_on_success_is_refused_where_nothing_can_be_promoted() -> None:
    from lift.errors import InvalidInput
    from lift.services.trainer.config import parse_run_config

    with pytest.raises(InvalidInput, match="promote_on_success"):
        parse_run_config(
            {
                "prompts": ["a"],
                "promote_on_success": True,
                "lora": {"full_finetune": True},
                "publish_every": 0,
            }
        )


# -- the trainer's adapters load with diffusers ---------------------------------------------


def _latents(pipe: Any) -> torch.Tensor:
    out = pipe(
        prompt="a dog runs",
        num_frames=9,
        height=32,
        width=32,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="latent",
    )
    return out.frames


class _Messages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _diffusers_load(model: Path, adapter_dir: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Latents of a fresh tiny pipeline before and after ``load_lora_weights``, and warnings."""
    from diffusers.utils import logging as diffusers_logging

    from lift.t2v import load_pipeline

    pipe = load_pipeline(model, torch.float32)
    pipe.set_progress_bar_config(disable=True)
    before = _latents(pipe)
    handler = _Messages()
    diffusers_logging.set_verbosity_warning()  # the services keep diffusers quiet: listen here
    root = logging.getLogger("diffusers")
    root.addHandler(handler)
    try:
        pipe.load_lora_weights(str(adapter_dir))
    finally:
        root.removeHandler(handler)
        diffusers_logging.set_verbosity_error()
    return before, _latents(pipe), handler.messages


def test_the_trainers_adapter_directory_loads_with_diffusers(
    tiny_generator_dir: Path, generator_loras: list[Path], tmp_path: Path
) -> None:
    from lift.services.generator.adapters import AdapterSet, parse_adapter
    from lift.services.trainer.checkpoints import write_adapter
    from lift.t2v import load_pipeline

    lora = generator_loras[0]
    config = json.loads((lora / CONFIG_FILE).read_text())
    config["lora_alpha"] = 2 * config["r"]  # alpha != rank: diffusers must read ours
    weights = (lora / WEIGHTS_FILE).read_bytes()

    # What the trainer wrote before: peft's file only. diffusers applies nothing.
    peft_only = tmp_path / "peft-only"
    peft_only.mkdir()
    (peft_only / WEIGHTS_FILE).write_bytes(weights)
    before, after, messages = _diffusers_load(tiny_generator_dir, peft_only)
    assert any("No LoRA keys" in m for m in messages) and torch.equal(before, after)

    # The trainer's writer now: diffusers applies it, with no warning.
    adapter = tmp_path / "adapter"
    write_adapter(adapter, weights, json.dumps(config))
    before, by_diffusers, messages = _diffusers_load(tiny_generator_dir, adapter)
    assert not messages, messages
    assert (by_diffusers - before).abs().mean() > 1e-3

    # ...and to the same effect as our own loader on the peft files of the same directory.
    pipe = load_pipeline(tiny_generator_dir, torch.float32)
    pipe.set_progress_bar_config(disable=True)
    adapters = AdapterSet(pipe.transformer, keep=2)
    parsed = parse_adapter(AdapterFiles.from_dir(adapter), pipe.transformer)
    adapters.install("ours", parsed)
    adapters.activate("ours")
    torch.testing.assert_close(_latents(pipe), by_diffusers, rtol=1e-4, atol=1e-5)
    # Our loader also takes diffusers' file alone (alpha from its metadata).
    diffusers_only = tmp_path / "diffusers-only"
    diffusers_only.mkdir()
    (diffusers_only / "pytorch_lora_weights.safetensors").write_bytes(
        (adapter / "pytorch_lora_weights.safetensors").read_bytes()
    )
    from lift.services.generator.adapters import read_adapter_uri
    from lift.uris import UriPolicy

    files_only = read_adapter_uri(diffusers_only.as_uri(), UriPolicy(file_root=tmp_path), 10**8)
    adapters.install("theirs", parse_adapter(files_only, pipe.transformer))
    adapters.activate("theirs")
    torch.testing.assert_close(_latents(pipe), by_diffusers, rtol=1e-4, atol=1e-5)
