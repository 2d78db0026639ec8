"""Compare / POST /v1/comparisons on both fronts: the signal critic and the tiny LiFT-label VLM.

Byte-identical repeats, exact a<->b swap symmetry, identical videos preferring neither,
bad inputs refused naming the field, batching of the pair, a native compare_batch, the
drift fields of GetInfo / /v1/info and of every critique, and `lift compare`.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from typer.testing import CliRunner

from lift.cli.main import app
from lift.client import CriticClient, CriticError
from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import (
    DIMENSIONS,
    Comparison,
    Dimension,
    DimensionPreference,
    Preference,
    comparison_from_json,
    comparison_from_proto,
)
from lift.services.critic import pairwise
from lift.services.critic.backends.base import PairJudgement
from lift.services.critic.backends.signal import SignalBackend
from lift.services.critic.engine import CriticEngine, VideoSource
from lift.services.critic.settings import CriticSettings
from lift.serving import Deadline
from tests.service.conftest import RunningCritic, start_critic

PROMPT = "a red ball rolls across green grass"


def _grpc(stub: Any, a: bytes, b: bytes, prompt: str = PROMPT) -> critic_pb2.CompareResponse:
    req = critic_pb2.CompareRequest(
        prompt=prompt, a=common_pb2.VideoSource(data=a), b=common_pb2.VideoSource(data=b)
    )
    return stub.Compare(req, timeout=120)


def _http(client: httpx.Client, a: bytes, b: bytes, prompt: str = PROMPT) -> httpx.Response:
    files = {"video_a": ("a.mp4", a), "video_b": ("b.mp4", b)}
    return client.post("/v1/comparisons", files=files, data={"prompt": prompt})


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _assert_swapped(ab: Comparison, ba: Comparison) -> None:
    for x, y in zip(ab.dimensions, ba.dimensions, strict=True):
        assert x.name == y.name and x.preference == y.preference.swapped()
    assert ab.overall == ba.overall.swapped()
    assert ab.video_a == ba.video_b and ab.video_b == ba.video_a


def _check_pair(stub: Any, client: httpx.Client, a: bytes, b: bytes) -> tuple[Comparison, Any]:
    """Both fronts, twice each: byte-identical repeats, the same comparison, swap symmetry."""
    first, again = _grpc(stub, a, b), _grpc(stub, a, b)
    assert first.SerializeToString(deterministic=True) == again.SerializeToString(
        deterministic=True
    )
    r1, r2 = _http(client, a, b), _http(client, a, b)
    assert r1.status_code == 200, r1.text
    assert r1.content == r2.content
    via_grpc = comparison_from_proto(first.comparison)
    via_http = comparison_from_json(r1.json())
    assert [d.name for d in via_grpc.dimensions] == list(DIMENSIONS)
    for x, y in zip(via_grpc.dimensions, via_http.dimensions, strict=True):
        for field in ("prob_a", "prob_b", "prob_tie"):
            gx, hy = getattr(x.preference, field), getattr(y.preference, field)
            assert (gx is None) == (hy is None) and (gx is None or abs(gx - hy) < 1e-6)
    _assert_swapped(via_grpc, comparison_from_proto(_grpc(stub, b, a).comparison))
    _assert_swapped(via_http, comparison_from_json(_http(client, b, a).json()))
    return via_grpc, r1.json()


# ------------------------------------------------------------------ the signal critic


def test_signal_critic_prefers_the_clean_twin_on_both_fronts(stub, http, mp4s) -> None:
    c, body = _check_pair(stub, http, mp4s["clean"], mp4s["flicker"])
    assert c.method == pairwise.EXPECTED_REWARD and c.model.backend == "signal"
    assert c.dimension(Dimension.SEMANTIC_CONSISTENCY) == Preference()  # signal cannot read text
    fid = c.dimension(Dimension.VIDEO_FIDELITY)
    assert fid.prob_a is not None and fid.prob_b is not None and fid.prob_a > fid.prob_b
    assert c.overall.prob_a is not None and c.overall.prob_b is not None
    assert c.overall.prob_a > c.overall.prob_b
    assert set(body) == {"dimensions", "overall", "method", "model", "videos", "prompt"}
    assert body["dimensions"][0] == {
        "name": "semantic_consistency",
        "prob_a": None,
        "prob_b": None,
        "prob_tie": None,
    }
    assert body["videos"]["a"]["frames_analysed"] > 1 and body["videos"]["a"]["fps_analysed"] > 0


def test_the_same_video_twice_prefers_neither(stub, http, mp4s) -> None:
    c = comparison_from_proto(_grpc(stub, mp4s["judder"], mp4s["judder"]).comparison)
    for p in (*(d.preference for d in c.dimensions if d.preference.compared), c.overall):
        assert p.prob_a == p.prob_b and p.prob_tie is not None and p.prob_tie > 0
    body = _http(http, mp4s["judder"], mp4s["judder"]).json()
    assert body["overall"]["prob_a"] == body["overall"]["prob_b"]


def test_json_body_and_uris_give_the_same_answer(http, critic: RunningCritic, mp4s) -> None:
    path = critic.video_root / "cmp-blur.mp4"
    path.write_bytes(mp4s["blur"])
    body = {
        "prompt": PROMPT,
        "a": {"video_b64": _b64(mp4s["clean"])},
        "b": {"video_uri": path.as_uri()},
    }
    r = http.post("/v1/comparisons", json=body)
    assert r.status_code == 200, r.text
    assert r.json() == _http(http, mp4s["clean"], mp4s["blur"]).json()


def _error(r: httpx.Response, status: int = 400) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == "INVALID_ARGUMENT"
    return str(body["error"]["message"])


def test_http_bad_inputs_name_the_field(http, mp4s, bad_videos) -> None:
    a = {"video_b64": _b64(mp4s["clean"])}
    assert "b" in _error(http.post("/v1/comparisons", json={"prompt": PROMPT, "a": a}))
    both = {"video_b64": _b64(mp4s["clean"]), "video_uri": "file:///x.mp4"}
    msg = _error(http.post("/v1/comparisons", json={"prompt": PROMPT, "a": both, "b": a}))
    assert msg.startswith("a: ") and "exactly one" in msg
    msg = _error(http.post("/v1/comparisons", json={"prompt": PROMPT, "a": a, "b": {}}))
    assert msg.startswith("b: ")
    bad_b64 = {"prompt": PROMPT, "a": a, "b": {"video_b64": "%%%"}}
    assert _error(http.post("/v1/comparisons", json=bad_b64)).startswith("b: video_b64")
    msg = _error(_http(http, mp4s["clean"], bad_videos["random_bytes"]))
    assert msg.startswith("video b: ") and "FFmpeg" in msg
    msg = _error(_http(http, bad_videos["truncated_mp4"], mp4s["clean"]))
    assert msg.startswith("video a: ")
    only_a = http.post(
        "/v1/comparisons", files={"video_a": ("a.mp4", mp4s["clean"])}, data={"prompt": PROMPT}
    )
    assert "video_b" in _error(only_a)
    assert "prompt" in _error(_http(http, mp4s["clean"], mp4s["clean"], prompt="  "))
    r = http.post("/v1/comparisons", content=b"x", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "video_a" in r.json()["error"]["message"]


def test_grpc_bad_inputs_name_the_field(stub, mp4s, bad_videos) -> None:
    def code_and_message(req: critic_pb2.CompareRequest) -> tuple[grpc.StatusCode, str]:
        with pytest.raises(grpc.RpcError) as err:
            stub.Compare(req, timeout=60)
        return err.value.code(), err.value.details()

    good = common_pb2.VideoSource(data=mp4s["clean"])
    code, msg = code_and_message(critic_pb2.CompareRequest(prompt=PROMPT, a=good))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "no video b" in msg
    garbage = common_pb2.VideoSource(data=bad_videos["random_bytes"])
    code, msg = code_and_message(critic_pb2.CompareRequest(prompt=PROMPT, a=garbage, b=good))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and msg.startswith("video a: ")
    outside = common_pb2.VideoSource(uri="file:///../../etc/passwd")
    code, msg = code_and_message(critic_pb2.CompareRequest(prompt=PROMPT, a=good, b=outside))
    assert code != grpc.StatusCode.OK and msg.startswith("video b: ")


def test_info_and_critiques_carry_what_a_client_needs_to_detect_drift(
    stub, http, critic: RunningCritic, mp4s
) -> None:
    info = http.get("/v1/info").json()
    assert info["protocol"] == "labels"
    assert info["score_semantics"] == "lift_labels_expected_reward_0_1"
    assert info["frame_sampling"]["mode"] in {"time", "index"}
    assert info["frame_sampling"]["frames"] >= 2
    with CriticClient(critic.grpc_target) as client:
        assert client.info() == info  # the same dict over both transports
        c = client.critique(mp4s["clean"], PROMPT)
    assert c.model.version == info["model"]["version"]
    assert 2 <= c.video.frames_analysed <= info["frame_sampling"]["frames"]
    # Evenly spread over the clip: the analysed rate is the frames over their span.
    assert c.video.fps_analysed == pytest.approx(
        (c.video.frames_analysed - 1) / c.video.duration_s, rel=0.2
    )
    with CriticClient(critic.http_url) as client:
        assert client.critique(mp4s["clean"], PROMPT).video == c.video


def test_clients_compare_over_both_transports(critic: RunningCritic, mp4s, tmp_path) -> None:
    import asyncio

    from lift.clients.critic import AsyncCriticClient

    path = tmp_path / "noise.mp4"
    path.write_bytes(mp4s["noise"])
    with CriticClient(critic.grpc_target) as g, CriticClient(critic.http_url) as h:
        via_grpc = g.compare(mp4s["clean"], path, PROMPT)
        via_http = h.compare(mp4s["clean"], str(path), PROMPT)
        with pytest.raises(CriticError) as err:
            h.compare(mp4s["clean"], b"not a video", PROMPT)
        assert err.value.code == "INVALID_ARGUMENT" and "video b" in err.value.message

    async def run() -> Comparison:
        async with AsyncCriticClient(critic.grpc_target) as client:
            return await client.compare(mp4s["clean"], path, PROMPT)

    assert asyncio.run(run()) == via_grpc
    assert via_http.method == via_grpc.method and via_http.video_b == via_grpc.video_b
    assert via_grpc.overall.prob_a is not None and via_http.overall.prob_a is not None
    assert abs(via_grpc.overall.prob_a - via_http.overall.prob_a) < 1e-6


# ------------------------------------------------------------------ the tiny LiFT-label VLM


@pytest.fixture(scope="module")
def vlm(tiny_critic_dir: Path) -> Iterator[RunningCritic]:
    running, stop = start_critic(
        backend="vlm", model=tiny_critic_dir, batch_max_size=8, batch_max_wait_ms=20
    )
    yield running
    stop()


def test_label_critic_compares_on_both_fronts(vlm: RunningCritic, mp4s) -> None:
    with (
        grpc.insecure_channel(vlm.grpc_target) as channel,
        httpx.Client(base_url=vlm.http_url, timeout=120) as client,
    ):
        vstub = critic_pb2_grpc.CriticServiceStub(channel)
        c, _ = _check_pair(vstub, client, mp4s["clean"], mp4s["blur"])
        info = client.get("/v1/info").json()
        same = comparison_from_proto(_grpc(vstub, mp4s["clean"], mp4s["clean"]).comparison)
    assert c.method == pairwise.EXPECTED_REWARD and c.model.backend == "vlm"
    assert all(d.preference.compared and d.preference.prob_tie is not None for d in c.dimensions)
    assert info["protocol"] == "labels" and c.model.version == info["model"]["version"]
    assert c.video_a.frames_analysed == info["frame_sampling"]["frames"]
    for p in (*(d.preference for d in same.dimensions), same.overall):
        assert p.prob_a == p.prob_b


# ------------------------------------------------------------------ the engine


class _Recording(SignalBackend):
    """The signal critic, batched, recording the size of each judge_batch call."""

    batched = True

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def judge_batch(self, prepared: Sequence[Any], with_reasons: bool, check: Callable[[], None]):
        with self.lock:
            self.batches.append(len(prepared))
        return super().judge_batch(prepared, with_reasons, check)


def test_both_videos_of_a_pair_are_judged_in_one_batch(mp4s) -> None:
    backend = _Recording()
    engine = CriticEngine(CriticSettings(batch_max_size=8, batch_max_wait_ms=50), backend)
    engine.load()
    try:
        c = engine.compare(
            PROMPT, VideoSource(data=mp4s["clean"]), VideoSource(data=mp4s["cut"]), Deadline(60)
        )
    finally:
        engine.close()
    assert backend.batches == [2]
    ms = c.dimension(Dimension.MOTION_SMOOTHNESS)
    assert ms.prob_a is not None and ms.prob_b is not None and ms.prob_a > ms.prob_b


class _Native(_Recording):
    """A backend that judges pairs itself (like UnifiedReward's pairwise mode will)."""

    def __init__(self) -> None:
        super().__init__()
        self.pairs: list[int] = []

    def compare_batch(self, pairs: Sequence[tuple[Any, Any]], check: Callable[[], None]):
        self.pairs.append(len(pairs))
        sure = Preference(0.7, 0.2, 0.1)
        return [
            PairJudgement(tuple(DimensionPreference(d, sure) for d in DIMENSIONS), sure, "native")
            for _ in pairs
        ]


def test_a_backend_with_compare_batch_judges_pairs_natively(mp4s, clips) -> None:
    from lift.video.encode import encode_video

    still = encode_video(clips["clean"].frames[:1], 8.0, "mp4")
    backend = _Native()
    engine = CriticEngine(CriticSettings(), backend)
    engine.load()
    try:
        c = engine.compare(
            PROMPT, VideoSource(data=mp4s["clean"]), VideoSource(data=mp4s["cut"]), Deadline(60)
        )
        swapped = engine.compare(
            PROMPT, VideoSource(data=mp4s["cut"]), VideoSource(data=mp4s["clean"]), Deadline(60)
        )
        one_frame = engine.compare(
            PROMPT, VideoSource(data=mp4s["clean"]), VideoSource(data=still), Deadline(60)
        )
    finally:
        engine.close()
    assert backend.pairs == [1, 1, 1] and backend.batches == []  # no pointwise judging
    assert c.method == "native"
    # The model saw the pair in one canonical order; each answer is mapped back to a, b.
    assert c.overall in (Preference(0.7, 0.2, 0.1), Preference(0.2, 0.7, 0.1))
    assert swapped.overall == c.overall.swapped()
    assert swapped.dimensions == tuple(
        DimensionPreference(d.name, d.preference.swapped()) for d in c.dimensions
    )
    # Whatever the model says, one frame has no motion to compare.
    assert one_frame.dimension(Dimension.MOTION_SMOOTHNESS) == Preference()
    assert one_frame.dimension(Dimension.VIDEO_FIDELITY).compared


# ------------------------------------------------------------------ the CLI


def test_lift_compare_in_process_and_remote(critic: RunningCritic, mp4s, tmp_path) -> None:
    a, b = tmp_path / "clean.mp4", tmp_path / "noise.mp4"
    a.write_bytes(mp4s["clean"])
    b.write_bytes(mp4s["noise"])
    runner = CliRunner()
    local = runner.invoke(app, ["compare", str(a), str(b), "--prompt", PROMPT, "--json"])
    assert local.exit_code == 0, local.output
    out = json.loads(local.stdout)
    assert out["a"] == str(a) and out["b"] == str(b)
    remote = runner.invoke(
        app,
        ["compare", str(a), str(b), "--prompt", PROMPT, "--json", "--server", critic.grpc_target],
    )
    assert remote.exit_code == 0, remote.output
    assert json.loads(remote.stdout) == out  # in-process and served: the same answer
    table = runner.invoke(app, ["compare", str(a), str(b), "--prompt", PROMPT])
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())
    assert "overall" in text and "P(tie)" in text and pairwise.EXPECTED_REWARD in text
    missing = runner.invoke(app, ["compare", str(a), str(tmp_path / "nope.mp4"), "--prompt", "x"])
    assert missing.exit_code == 1 and "video b" in missing.stderr
    # Remote, the unreadable file is named as video a/b too (it was a bare OSError text);
    # in-process, it is found before any model loads (a typo waited for the whole load).
    nope = str(tmp_path / "nope.mp4")
    for args in (
        ["--server", critic.http_url],
        ["--server", critic.grpc_target],
        ["--backend", "vlm", "--model", str(tmp_path / "no-such-checkpoint")],
    ):
        r = runner.invoke(app, ["compare", nope, str(b), "--prompt", "x", *args])
        assert r.exit_code == 1 and r.stderr.startswith(f"video a: cannot read {nope}"), r.stderr
    bad = runner.invoke(
        app, ["compare", str(a), str(a), "--prompt", " ", "--server", critic.http_url]
    )
    assert bad.exit_code == 1 and "prompt" in bad.stderr


def test_remote_lift_compare_imports_no_torch(critic: RunningCritic, mp4s, tmp_path) -> None:
    from tests.service.test_cli_remote import lift

    a, b = tmp_path / "clean.mp4", tmp_path / "frozen.mp4"
    a.write_bytes(mp4s["clean"])
    b.write_bytes(mp4s["frozen"])
    proc, heavy = lift(
        tmp_path, "compare", str(a), str(b), "--prompt", PROMPT, "--server", critic.http_url
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert heavy == []
    assert "motion smoothness" in proc.stdout and "overall" in proc.stdout


def test_comparison_replies_match_the_openapi_document(critic: RunningCritic, mp4s) -> None:
    from tests.service.test_openapi import Contract

    c = Contract(critic.http_url)
    try:
        post = "/v1/comparisons"
        body = c.check("/v1/comparisons", "post", _http(c.http, mp4s["clean"], mp4s["noise"]))
        assert body["method"] == pairwise.EXPECTED_REWARD
        as_json = {"prompt": PROMPT, "a": {"video_b64": _b64(mp4s["clean"])}, "b": {}}
        assert c.check(post, "post", c.http.post(post, json=as_json))["error"]["message"]
        c.check("/v1/info", "get", c.http.get("/v1/info"))
        content = c.doc["paths"][post]["post"]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/json"}
    finally:
        c.http.close()


def test_in_process_lift_compare_without_the_critic_extra_names_it(tmp_path) -> None:
    import subprocess
    import sys

    from tests.unit.test_cli import _WITHOUT_EXTRAS

    for name in ("a.mp4", "b.mp4"):  # the files are read before the extra is needed
        (tmp_path / name).write_bytes(b"not decoded without the extra")
    args = ["compare", "a.mp4", "b.mp4", "--prompt", "a dog"]
    r = subprocess.run(
        [sys.executable, "-c", _WITHOUT_EXTRAS, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert r.returncode == 3, r.stderr[-2000:]
    assert "pip install 'lift-suite[critic]'" in " ".join(r.stderr.split())
