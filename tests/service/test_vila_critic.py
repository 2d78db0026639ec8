"""A critic serving the tiny VILA-1.5 with the lift-13b templates, with and without its LoRA."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import grpc
import httpx
import pytest

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import DIMENSIONS, Critique, from_json, from_proto
from tests.service.conftest import RunningCritic, start_critic

PROMPT = "a red ball rolls across green grass"


def _assert_full(critique: Critique, with_reasons: bool = True) -> None:
    assert [d.name for d in critique.dimensions] == list(DIMENSIONS)
    for d in critique.dimensions:
        p = d.probabilities
        assert p is not None and abs(p.good + p.normal + p.bad - 1) < 1e-5
        if with_reasons:
            assert len(d.reasons) == 1 and d.reasons[0].strip()
        else:
            assert d.reasons == ()
    assert critique.model.backend == "vlm"
    assert critique.reward is not None


def _both_fronts(running: RunningCritic, mp4s: dict[str, bytes]) -> dict[str, object]:
    """Critique and Score of two clips over gRPC and HTTP, each asked twice."""
    out: dict[str, object] = {}
    names = ["clean", "judder"]
    with grpc.insecure_channel(running.grpc_target) as channel:
        stub = critic_pb2_grpc.CriticServiceStub(channel)
        for name in names:
            req = critic_pb2.CritiqueRequest(
                video=common_pb2.VideoSource(data=mp4s[name]), prompt=PROMPT
            )
            first, again = (stub.Critique(req, timeout=120) for _ in range(2))
            raw = first.SerializeToString(deterministic=True)
            assert raw == again.SerializeToString(deterministic=True)
            out[f"grpc-critique-{name}"] = from_proto(first.critique)
        score = critic_pb2.ScoreRequest(
            items=[
                critic_pb2.ScoreItem(video=common_pb2.VideoSource(data=mp4s[n]), prompt=PROMPT)
                for n in names
            ]
        )
        first_s, again_s = (stub.Score(score, timeout=120) for _ in range(2))
        assert first_s.SerializeToString(deterministic=True) == again_s.SerializeToString(
            deterministic=True
        )
        out["grpc-score"] = [from_proto(r.critique) for r in first_s.results]
    with httpx.Client(base_url=running.http_url, timeout=120) as client:
        for name in names:
            bodies = []
            for _ in range(2):
                r = client.post(
                    "/v1/critiques",
                    files={"video": ("v.mp4", mp4s[name])},
                    data={"prompt": PROMPT},
                )
                assert r.status_code == 200, r.text
                bodies.append(r.content)
            assert bodies[0] == bodies[1]  # byte-identical JSON on a repeat
            out[f"http-critique-{name}"] = from_json(json.loads(bodies[0]))
        payload = {
            "items": [
                {"video_b64": base64.b64encode(mp4s[n]).decode(), "prompt": PROMPT} for n in names
            ]
        }
        scored = [client.post("/v1/scores", json=payload) for _ in range(2)]
        assert all(r.status_code == 200 for r in scored), scored[0].text
        assert scored[0].content == scored[1].content
        out["http-score"] = [from_json(x["critique"]) for x in scored[0].json()["results"]]
        out["info"] = client.get("/v1/info").json()
    return out


@pytest.fixture(scope="module")
def answers(
    tiny_vila_dir: Path, tiny_vila_lora_dir: Path, mp4s: dict[str, bytes]
) -> dict[str, dict[str, object]]:
    """What a critic on the base and one with the LiFT-style LoRA answer, over both fronts."""
    got = {}
    for which, adapter in (("base", None), ("lora", tiny_vila_lora_dir)):
        running, stop = start_critic(
            backend="vlm",
            model=tiny_vila_dir,
            adapter=adapter,
            templates="lift-13b",
            batch_max_size=8,
            batch_max_wait_ms=20,
        )
        try:
            got[which] = _both_fronts(running, mp4s)
        finally:
            stop()
    return got


@pytest.mark.parametrize("which", ["base", "lora"])
def test_critique_and_score_on_both_fronts(answers, which: str) -> None:
    got = answers[which]
    for i, name in enumerate(["clean", "judder"]):
        via_grpc = got[f"grpc-critique-{name}"]
        via_http = got[f"http-critique-{name}"]
        assert isinstance(via_grpc, Critique) and isinstance(via_http, Critique)
        _assert_full(via_grpc)
        _assert_full(via_http)
        scores = [got["grpc-score"][i], got["http-score"][i]]  # type: ignore[index]
        for s in scores:
            _assert_full(s, with_reasons=False)
        for a, b, s, h in zip(
            via_grpc.dimensions,
            via_http.dimensions,
            scores[0].dimensions,
            scores[1].dimensions,
            strict=True,
        ):
            assert a.label == b.label == s.label == h.label
            assert a.reasons == b.reasons
            for other in (b, s, h):
                assert other.probabilities.good == pytest.approx(a.probabilities.good, abs=1e-5)
                assert other.probabilities.bad == pytest.approx(a.probabilities.bad, abs=1e-5)
    info = got["info"]
    assert isinstance(info, dict) and info["model"]["backend"] == "vlm"
    assert ("+" in info["model"]["name"]) == (which == "lora")


def test_the_adapter_changes_the_output(answers) -> None:
    for name in ("clean", "judder"):
        a, b = answers["base"][f"grpc-critique-{name}"], answers["lora"][f"grpc-critique-{name}"]
        assert isinstance(a, Critique) and isinstance(b, Critique)
        assert [d.probabilities for d in a.dimensions] != [d.probabilities for d in b.dimensions]
        assert [d.reasons for d in a.dimensions] != [d.reasons for d in b.dimensions]
        assert a.model.version != b.model.version


@pytest.mark.parametrize("broken", ["projector", "folder", "hidden", "pickle"])
def test_serve_refuses_a_broken_checkpoint_at_start(
    broken: str, tmp_path: Path, tiny_vila_dir: Path, tiny_vila_lora_dir: Path
) -> None:
    from typer.testing import CliRunner

    from lift.cli.main import app

    root = tmp_path / "vila"
    shutil.copytree(tiny_vila_dir, root)
    args = ["critic", "serve", "--backend", "vlm", "--model", str(root)]
    args += ["--templates", "lift-13b", "--grpc-port", "0", "--http-port", "0"]
    if broken == "projector":
        path = root / "mm_projector" / "config.json"
        path.write_text(json.dumps({"mm_projector_type": "mlp_resampler"}))
        expected = "mlp_resampler"
    elif broken == "folder":
        shutil.rmtree(root / "vision_tower")
        expected = "vision_tower/ folder is missing"
    elif broken == "hidden":
        raw = json.loads((root / "config.json").read_text())
        raw["hidden_size"] = 96
        (root / "config.json").write_text(json.dumps(raw))
        expected = "hidden_size 96"
    else:
        import torch

        lora = tmp_path / "lora"
        shutil.copytree(tiny_vila_lora_dir, lora)
        marker = tmp_path / "ran.txt"

        class RunsCode:
            def __reduce__(self):  # type: ignore[no-untyped-def]
                return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

        torch.save({"x": RunsCode()}, lora / "non_lora_trainables.bin")
        args += ["--adapter", str(lora)]
        expected = "non_lora_trainables.bin is refused"
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0
    text = " ".join((result.stderr or result.output).split())
    assert "could not start" in text and expected in text
    if broken == "pickle":
        assert not (tmp_path / "ran.txt").exists()
