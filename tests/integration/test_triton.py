"""The triton backend against a real Triton Inference Server (the CPU build in nvidia-pytriton).

The committed model repository (deploy/triton/cpu) is loaded unedited; the
exported graph reaches it through LIFT_VISION_GRAPH. Label probabilities through
Triton must match the torch critic within 1e-4, in-process and through the
critic service.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lift.client import CriticClient
from lift.runner import start_in_thread
from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
from lift.services.critic.backends.vlm import vision_graph as vg
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings
from lift.serving import Deadline
from tools import triton

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
NEVER = Deadline().check
PROMPTS = ["a red ball rolls", "waves at sunset", "a dog runs"]


@pytest.fixture(scope="module")
def server(
    graph_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[triton.TritonServer]:
    work = tmp_path_factory.mktemp("triton")
    s = triton.start(work, env={"LIFT_VISION_GRAPH": str(graph_dir)})
    yield s
    s.stop()


def _probs(backend: VlmBackend, mixed_videos) -> np.ndarray:
    prepared = [backend.prepare(v, p, NEVER) for v, p in zip(mixed_videos, PROMPTS, strict=True)]
    return np.array(
        [
            [d.probabilities.good, d.probabilities.normal, d.probabilities.bad]  # type: ignore[union-attr]
            for j in backend.judge_batch(prepared, False, NEVER)
            for d in j.dimensions
        ]
    )


def test_committed_repository_loads_unedited_with_dynamic_batching(server) -> None:
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(server.grpc_url)
    assert client.is_model_ready("lift_critic_vision")
    config = client.get_model_config("lift_critic_vision", as_json=True)["config"]
    assert config["max_batch_size"] == 16
    assert config["dynamic_batching"]["preferred_batch_size"] == [4, 8, 16]
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    assert {i["name"] for i in config["input"]} == set(vg.INPUTS)


def test_triton_backend_matches_torch(server, tiny_critic_dir: Path, mixed_videos) -> None:
    torch_backend = VlmBackend(VlmOptions(model=tiny_critic_dir))
    tri = VlmBackend(VlmOptions(model=tiny_critic_dir, vision="triton", triton_url=server.grpc_url))
    try:
        assert tri.model.backend == "triton"
        a, b = _probs(torch_backend, mixed_videos), _probs(tri, mixed_videos)
    finally:
        tri.scorer.family.encoder.close()  # type: ignore[attr-defined]
    assert a.shape == (9, 3)
    assert np.abs(a - b).max() < 1e-4


def test_critic_service_with_triton_backend_end_to_end(
    server, tiny_critic_dir: Path, mp4s: dict[str, bytes]
) -> None:
    def critique(**kw) -> list[float]:
        settings = CriticSettings(grpc_port=0, http_port=0, model=tiny_critic_dir, **kw)
        runner, stop = start_in_thread(build_critic, settings)
        try:
            with CriticClient(f"127.0.0.1:{runner.grpc_port}") as client:
                c = client.critique(mp4s["clean"], "a red ball rolls")
                info = client.info()
        finally:
            stop()
        assert info["model"]["backend"] == kw["backend"]
        return [
            x
            for d in c.dimensions
            if d.probabilities
            for x in (d.probabilities.good, d.probabilities.bad)
        ]

    via_triton = critique(backend="triton", triton_url=server.grpc_url)
    via_torch = critique(backend="vlm")
    assert np.abs(np.array(via_triton) - np.array(via_torch)).max() < 1e-4


def test_unreachable_triton_is_a_clear_start_up_error(tiny_critic_dir: Path) -> None:
    with pytest.raises(ValueError, match="not reachable"):
        VlmBackend(
            VlmOptions(
                model=tiny_critic_dir, vision="triton", triton_url="127.0.0.1:1", triton_timeout_s=5
            )
        )


# -- VILA: the same committed repository serving the VILA graph (frames as Triton's batch) ------

VILA = "lift-13b"


@pytest.fixture(scope="module")
def vila_server(
    tiny_vila_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[triton.TritonServer]:
    graph = tmp_path_factory.mktemp("vila-graph")
    vg.export(tiny_vila_dir, graph)
    s = triton.start(tmp_path_factory.mktemp("triton-vila"), env={"LIFT_VISION_GRAPH": str(graph)})
    yield s
    s.stop()


def test_repository_takes_its_inputs_from_the_vila_graph(vila_server) -> None:
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(vila_server.grpc_url)
    config = client.get_model_config("lift_critic_vision", as_json=True)["config"]
    assert [i["name"] for i in config["input"]] == ["pixels"]
    assert [int(d) for d in config["input"][0]["dims"]] == [3, 70, 70]  # per frame: (3, H, W)
    assert config["max_batch_size"] == 16


def test_triton_backend_matches_vlm_for_vila(
    vila_server, server, tiny_vila_dir: Path, mixed_videos
) -> None:
    torch_backend = VlmBackend(VlmOptions(model=tiny_vila_dir, templates=VILA))
    tri = VlmBackend(
        VlmOptions(
            model=tiny_vila_dir, templates=VILA, vision="triton", triton_url=vila_server.grpc_url
        )
    )
    try:
        encoder = tri.scorer.family.encoder  # type: ignore[attr-defined]
        # 8 + 8 + 4 frames in one call: more than max_batch_size, sent as several requests.
        assert sum(len(v.frames) for v in mixed_videos) > encoder.max_batch == 16
        a, b = _probs(torch_backend, mixed_videos), _probs(tri, mixed_videos)
    finally:
        tri.scorer.family.encoder.close()  # type: ignore[attr-defined]
    assert a.shape == (9, 3)
    print(f"vila triton label probabilities: max diff {np.abs(a - b).max():.3g}")
    assert np.abs(a - b).max() < 1e-4
    # A server holding the other family's graph is refused at start-up, both ways.
    with pytest.raises(ValueError, match="another family's vision graph"):
        VlmBackend(
            VlmOptions(
                model=tiny_vila_dir, templates=VILA, vision="triton", triton_url=server.grpc_url
            )
        )
