"""Odd inputs answered right, and every decoded frame held to the limits (issue 16, items 8-9).

Replayed on loopback against a running critic (both fronts) and, for the gRPC
decoding of requests, the trainer too:

* a stream that starts at 64x64 and switches to larger frames is refused naming
  the limit (it was accepted: the size was checked on the first frame only);
* a valid variable-frame-rate video is judged on its presentation timestamps
  (it was refused as "truncated");
* a portrait phone clip (display matrix) comes out upright;
* a one-frame video or a still image gets motion ``unassessed`` with a reason,
  never a motion score (it got "good" 0.96);
* malformed protobuf and invalid UTF-8 on gRPC answer INVALID_ARGUMENT with a
  sentence (they answered UNKNOWN), invalid UTF-8 in a multipart prompt a 400
  (it was read as Latin-1);
* no error message names a server path.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import av
import cv2
import grpc
import httpx
import numpy as np
import pytest

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import Dimension, Label, from_json, from_proto
from lift.errors import InvalidInput
from lift.reward import DEFAULT_REWARD_MAP, dimension_reward
from lift.services.critic.backends.base import ONE_FRAME_REASON
from lift.video import VideoLimits, decode_video
from lift.video.encode import encode_video
from tests.service.conftest import RunningCritic, start_critic

PROMPT = "a white bar sweeps across a dark room"
SMALL_SIDE = 256
"""The critic under test refuses frames with a side above this (max_side_px)."""


# -- clips -------------------------------------------------------------------------
def _bar_frames(n: int, height: int = 64, width: int = 96) -> np.ndarray:
    """A textured frame with a bright bar that moves right, one step per frame."""
    rng = np.random.default_rng(0)
    base = rng.integers(30, 90, (height, width, 3), dtype=np.uint8)
    frames = np.repeat(base[None], n, axis=0)
    for i in range(n):
        x = (i * 3) % (width - 8)
        frames[i, :, x : x + 8] = 230
    return frames


def _encode(
    frames: np.ndarray,
    pts: list[int],
    time_base: Fraction,
    fmt: str = "mp4",
    rotation: int | None = None,
    hflip: bool = False,
    vflip: bool = False,
) -> bytes:
    """H.264 in ``fmt`` with the given presentation timestamps (and display matrix)."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = cast(av.VideoStream, out.add_stream("libx264", rate=30))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for frame, t in zip(frames, pts, strict=True):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts, vf.time_base = t, time_base
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _ts_segment(width: int, height: int, n: int, start: int) -> bytes:
    """An MPEG-TS H.264 segment of ``n`` frames at 8 fps, pts from ``start``."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mpegts") as out:
        stream = cast(av.VideoStream, out.add_stream("libx264", rate=8))
        stream.options = {"preset": "ultrafast"}
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            vf = av.VideoFrame.from_ndarray(
                np.full((height, width, 3), (i * 20) % 255, np.uint8), format="rgb24"
            )
            vf.pts = start + i
            for packet in stream.encode(vf):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _growing_stream(width: int, height: int) -> bytes:
    """64x64 frames for 7 s (past FFmpeg's probing window), then frames of width x height.

    Two MPEG-TS segments back to back: the H.264 decoder switches size at the
    second one's parameter sets, so the container header says 64x64 throughout.
    """
    return _ts_segment(64, 64, 56, 0) + _ts_segment(width, height, 3, 56)


# Variable frame rate: 30 frames 20 ms apart, then 9 frames 1 s apart (ms timestamps).
VFR_STEPS = [20] * 29 + [1000] * 10
VFR_PTS = [int(t) for t in np.cumsum([0, *VFR_STEPS])]
VFR_END_S = VFR_PTS[-1] / 1000


@pytest.fixture(scope="module")
def vfr_clips() -> dict[str, bytes]:
    frames = _bar_frames(len(VFR_PTS))
    return {fmt: _encode(frames, VFR_PTS, Fraction(1, 1000), fmt) for fmt in ("mp4", "matroska")}


def _marked(height: int = 64, width: int = 96) -> np.ndarray:
    """Frames with a red block in the top-left corner (which way is up)."""
    frames = _bar_frames(6, height, width)
    frames[:, :16, :16] = (255, 0, 0)
    return frames


def _png(frame: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def stills() -> dict[str, bytes]:
    frame = _bar_frames(1)
    return {"one_frame_mp4": encode_video(frame, 8.0, "mp4"), "png": _png(frame[0])}


# -- a critic with a small side limit ------------------------------------------------
@pytest.fixture(scope="module")
def critic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCritic]:
    root = tmp_path_factory.mktemp("security-videos")
    running, stop = start_critic(video_root=root, max_side_px=SMALL_SIDE, workers=2, max_queue=8)
    yield running
    stop()


@pytest.fixture(scope="module")
def channel(critic: RunningCritic) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(critic.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> critic_pb2_grpc.CriticServiceStub:
    return critic_pb2_grpc.CriticServiceStub(channel)


@pytest.fixture(scope="module")
def http(critic: RunningCritic) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=critic.http_url, timeout=60) as client:
        yield client


def _grpc_critique(stub: critic_pb2_grpc.CriticServiceStub, data: bytes) -> Any:
    req = critic_pb2.CritiqueRequest(video=common_pb2.VideoSource(data=data), prompt=PROMPT)
    return stub.Critique(req, timeout=60)


def _http_critique(http: httpx.Client, data: bytes, name: str = "v.mp4") -> httpx.Response:
    return http.post("/v1/critiques", files={"video": (name, data)}, data={"prompt": PROMPT})


def _grpc_refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# -- item 8: every decoded frame against the limits -----------------------------------
@pytest.mark.parametrize(
    "size",
    [(320, 32), (512, 384)],
    ids=["a side past the limit", "more pixels than the decoder may allocate"],
)
def test_a_stream_that_grows_mid_way_is_refused_naming_the_limit(size: tuple[int, int]) -> None:
    data = _growing_stream(*size)
    with av.open(io.BytesIO(data)) as c:  # the attack: the header says 64x64
        ctx = c.streams.video[0].codec_context
        assert (ctx.width, ctx.height) == (64, 64)
    limits = VideoLimits(max_side_px=SMALL_SIDE)
    with pytest.raises(InvalidInput) as info:
        decode_video(data, limits)
    message = info.value.message
    assert f"{size[0]}x{size[1]}" in message and f"{SMALL_SIDE} px" in message
    assert "frame 56" in message
    # The same stream whose frames all fit is accepted: the refusal is the size.
    assert decode_video(data, VideoLimits(max_side_px=size[0])).total_frames == 59


def test_a_cap_on_decoded_pixels_in_all() -> None:
    data = encode_video(_bar_frames(20), 8.0, "mp4")
    with pytest.raises(InvalidInput, match="pixels in all frames"):
        decode_video(data, VideoLimits(max_decoded_pixels=64 * 96 * 10))
    assert decode_video(data, VideoLimits(max_decoded_pixels=64 * 96 * 20)).total_frames == 20


def test_both_fronts_refuse_a_growing_stream(stub, http) -> None:
    data = _growing_stream(512, 384)
    err = _grpc_refusal(lambda: _grpc_critique(stub, data))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{SMALL_SIDE} px" in (err.details() or "")
    r = _http_critique(http, data, "v.ts")
    assert r.status_code == 400
    assert f"{SMALL_SIDE} px" in r.json()["error"]["message"]


# -- item 9: timing from presentation timestamps ---------------------------------------
@pytest.mark.parametrize("fmt", ["mp4", "matroska"])
def test_a_variable_frame_rate_video_is_decoded_on_its_timeline(
    vfr_clips: dict[str, bytes], fmt: str
) -> None:
    video = decode_video(vfr_clips[fmt], VideoLimits(), max_samples=8)
    assert video.total_frames == len(VFR_PTS)
    # The duration is the PTS timeline (not frames / nominal rate: 40 / 30 = 1.3 s).
    assert VFR_END_S <= video.duration_s <= VFR_END_S + 1.0
    # Sampled by time: evenly over 0..9.6 s, not 6 of 8 samples inside the first 0.6 s.
    assert video.timestamps[0] == 0 and video.timestamps[-1] == pytest.approx(VFR_END_S, abs=1e-3)
    assert np.diff(video.timestamps).max() < 2.5
    assert (video.timestamps < 1.0).sum() <= 2
    # Each sampled time is a real presentation time.
    real = np.array(VFR_PTS) / 1000
    assert np.abs(video.timestamps[:, None] - real[None]).min(axis=1).max() < 1e-3


def test_timestamps_that_restart_still_give_a_whole_timeline() -> None:
    # Two segments joined without re-stamping: the second restarts at pts 0.
    data = _ts_segment(64, 64, 20, 0) + _ts_segment(64, 64, 20, 0)
    video = decode_video(data, VideoLimits(), max_samples=8)
    assert video.total_frames == 40
    assert np.all(np.diff(video.timestamps) > 0)
    assert video.indices[0] == 0 and video.indices[-1] == 39  # both halves sampled
    assert video.duration_s == pytest.approx(5.0, abs=0.2)


def test_a_variable_frame_rate_video_is_judged_by_both_fronts(vfr_clips, stub, http) -> None:
    data = vfr_clips["matroska"]
    critique = from_proto(_grpc_critique(stub, data).critique)
    assert critique.video.duration_s == pytest.approx(VFR_END_S, abs=1.0)
    assert critique.video.frames == len(VFR_PTS)
    for dim in critique.dimensions:
        for issue in dim.issues:  # issue spans on the PTS timeline
            assert 0 <= issue.start_s <= issue.end_s <= critique.video.duration_s + 1e-6
    r = _http_critique(http, data, "v.mkv")
    assert r.status_code == 200, r.text
    assert from_json(r.json()).video.duration_s == pytest.approx(critique.video.duration_s)


# -- item 9: rotation ---------------------------------------------------------------------
def _red_corner(frame: np.ndarray) -> str:
    f = frame.astype(int)
    corners = {
        "top_left": f[:12, :12],
        "top_right": f[:12, -12:],
        "bottom_left": f[-12:, :12],
        "bottom_right": f[-12:, -12:],
    }
    red = {k: float(((v[..., 0] > 180) & (v[..., 1] < 80)).mean()) for k, v in corners.items()}
    return max(red, key=lambda k: red[k])


@pytest.mark.parametrize(
    "rotation, flip, corner",
    [
        (90, "", "bottom_left"),  # a phone held upright: the clip turns counter-clockwise
        (-90, "", "top_right"),
        (180, "", "bottom_right"),
        (0, "", "top_left"),
        (0, "h", "top_right"),  # a mirrored selfie camera
        (0, "v", "bottom_left"),
        (90, "h", "bottom_right"),  # turned, then mirrored
        (90, "v", "top_left"),
    ],
)
def test_the_display_matrix_is_applied(rotation: int, flip: str, corner: str) -> None:
    data = _encode(
        _marked(),
        list(range(6)),
        Fraction(1, 30),
        rotation=rotation,
        hflip=flip == "h",
        vflip=flip == "v",
    )
    video = decode_video(data, VideoLimits())
    quarter = rotation % 180 != 0
    assert (video.width, video.height) == ((64, 96) if quarter else (96, 64))
    assert video.frames.shape[1:3] == (video.height, video.width)
    assert _red_corner(video.frames[0]) == corner
    gray = decode_video(data, VideoLimits(), pixel_format="gray")
    assert gray.frames.shape[1:3] == video.frames.shape[1:3]


@pytest.mark.parametrize(
    "orientation, corner",
    [(1, "top_left"), (3, "bottom_right"), (6, "top_right"), (8, "bottom_left")],
)
def test_a_jpeg_exif_orientation_is_applied(orientation: int, corner: str) -> None:
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(_marked()[0]))
    exif = image.getexif()
    exif[0x0112] = orientation  # EXIF Orientation
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif)
    video = decode_video(buf.getvalue(), VideoLimits())
    assert (video.width, video.height) == ((64, 96) if orientation in (6, 8) else (96, 64))
    assert _red_corner(video.frames[0]) == corner


def test_a_portrait_clip_is_reported_upright_by_the_critic(stub) -> None:
    data = _encode(_marked(), list(range(6)), Fraction(1, 30), rotation=90)
    info = _grpc_critique(stub, data).critique.video
    assert (info.width, info.height) == (64, 96)


# -- item 9: one frame ----------------------------------------------------------------------
def _assert_motion_unassessed(critique: Any) -> None:
    motion = critique.dimension(Dimension.MOTION_SMOOTHNESS)
    assert motion.label is Label.UNASSESSED
    assert motion.score is None and motion.probabilities is None
    assert motion.reasons == (ONE_FRAME_REASON,) and "one frame" in ONE_FRAME_REASON
    # The reward is the mean over the dimensions that were judged (fidelity here).
    judged = [
        r
        for r in (dimension_reward(d, DEFAULT_REWARD_MAP) for d in critique.dimensions)
        if r is not None
    ]
    assert judged and critique.reward == pytest.approx(sum(judged) / len(judged), abs=1e-5)
    assert critique.dimension(Dimension.VIDEO_FIDELITY).label is not Label.UNASSESSED


@pytest.mark.parametrize("name", ["one_frame_mp4", "png"])
def test_one_frame_gets_no_motion_score_on_either_front(stills, stub, http, name: str) -> None:
    data = stills[name]
    critique = from_proto(_grpc_critique(stub, data).critique)
    assert critique.video.frames == 1
    _assert_motion_unassessed(critique)
    assert critique.dynamic_degree is None
    r = _http_critique(http, data, "still.png" if name == "png" else "v.mp4")
    assert r.status_code == 200, r.text
    _assert_motion_unassessed(from_json(r.json()))
    # Score (no reasons): still unassessed, still no score.
    req = critic_pb2.ScoreRequest(
        items=[critic_pb2.ScoreItem(video=common_pb2.VideoSource(data=data), prompt=PROMPT)]
    )
    scored = from_proto(stub.Score(req, timeout=60).results[0].critique)
    motion = scored.dimension(Dimension.MOTION_SMOOTHNESS)
    assert motion.label is Label.UNASSESSED and motion.score is None


def test_two_frames_are_still_judged(stub) -> None:
    data = encode_video(_bar_frames(2), 8.0, "mp4")
    motion = from_proto(_grpc_critique(stub, data).critique).dimension(Dimension.MOTION_SMOOTHNESS)
    assert motion.label is not Label.UNASSESSED and motion.score is not None


def test_the_vlm_and_composite_backends_do_not_score_one_frame(tiny_critic_dir, stills) -> None:
    from lift.services.critic.backends.composite import CompositeBackend
    from lift.services.critic.backends.signal import SignalBackend
    from lift.services.critic.backends.vlm import VlmBackend, VlmOptions
    from lift.serving import Deadline

    vlm = VlmBackend(VlmOptions(model=tiny_critic_dir))
    composite = CompositeBackend(vlm, SignalBackend(), list(Dimension))
    check = Deadline().check
    video = decode_video(stills["png"], VideoLimits(), max_samples=8)
    for backend in (vlm, composite):
        for with_reasons in (True, False):
            prepared = backend.prepare(video, PROMPT, check)
            judgement = backend.judge_batch([prepared], with_reasons, check)[0]
            by = {d.name: d for d in judgement.dimensions}
            assert list(by) == list(Dimension)
            motion = by[Dimension.MOTION_SMOOTHNESS]
            assert motion.label is Label.UNASSESSED and motion.score is None
            assert motion.reasons == ((ONE_FRAME_REASON,) if with_reasons else ())
            assert by[Dimension.SEMANTIC_CONSISTENCY].label is not Label.UNASSESSED


# -- item 9: malformed requests -----------------------------------------------------------
GARBAGE = b"\xff\xff\xff"
# CritiqueRequest.prompt (field 2, length-delimited) holding one byte that is not UTF-8.
BAD_UTF8_PROMPT = b"\x12\x01\xff"


@pytest.mark.parametrize(
    "raw, words", [(GARBAGE, "not a valid protobuf"), (BAD_UTF8_PROMPT, "UTF-8")]
)
def test_undecodable_grpc_requests_are_invalid_argument(channel, raw: bytes, words: str) -> None:
    # No serializer: the bytes go on the wire as they are.
    critique = channel.unary_unary("/lift.critic.v1.CriticService/Critique")
    err = _grpc_refusal(lambda: critique(raw, timeout=10))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in (err.details() or "")
    # A client stream (CritiqueUpload): the bad message is refused the same way.
    header_bad_utf8 = b"\x0a\x03" + BAD_UTF8_PROMPT.replace(b"\x12", b"\x0a", 1)
    upload = channel.stream_unary("/lift.critic.v1.CriticService/CritiqueUpload")
    for stream_raw in (GARBAGE, header_bad_utf8):
        err = _grpc_refusal(lambda m=stream_raw: upload(iter([m]), timeout=10))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    # Health is answered the same way.
    health = channel.unary_unary("/grpc.health.v1.Health/Check")
    assert _grpc_refusal(lambda: health(GARBAGE, timeout=10)).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_the_trainer_refuses_undecodable_requests_too(tmp_path: Path) -> None:
    from lift.runner import start_in_thread
    from lift.services.trainer.server import build_trainer
    from lift.services.trainer.settings import TrainerSettings

    settings = TrainerSettings(
        data_dir=tmp_path / "trainer", grpc_port=0, http_port=0, log_level="WARNING"
    )
    runner, stop = start_in_thread(build_trainer, settings)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{runner.grpc_port}") as ch:
            bad_id = b"\x0a\x01\xff"  # GetRunRequest.id: one byte that is not UTF-8
            get_run = ch.unary_unary("/lift.trainer.v1.TrainerService/GetRun")
            watch = ch.unary_stream("/lift.trainer.v1.TrainerService/WatchRun")
            for call in (get_run, lambda raw, **kw: list(watch(raw, **kw))):
                for raw in (GARBAGE, bad_id):
                    err = _grpc_refusal(lambda c=call, r=raw: c(r, timeout=10))
                    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
                    assert "Traceback" not in (err.details() or "")
    finally:
        stop()


def _multipart(prompt: bytes, video: bytes) -> tuple[bytes, str]:
    boundary = "lift-security-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'.encode()
        + prompt
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="video"; '
        f'filename="v.mp4"\r\nContent-Type: video/mp4\r\n\r\n'.encode()
        + video
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_multipart_prompt_that_is_not_utf8_is_a_400(http, stills) -> None:
    data = encode_video(_bar_frames(8), 8.0, "mp4")
    body, content_type = _multipart("caf\xe9 sc\xe8ne".encode("latin-1"), data)
    r = http.post("/v1/critiques", content=body, headers={"content-type": content_type})
    assert r.status_code == 400
    assert "UTF-8" in r.json()["error"]["message"] and "prompt" in r.json()["error"]["message"]
    # A JSON body with invalid UTF-8 is refused too.
    raw = b'{"prompt": "caf\xe9", "video_b64": "AAAA"}'
    r = http.post("/v1/critiques", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]
    # The same prompt in UTF-8 is judged, and read as sent.
    body, content_type = _multipart("café scène".encode(), data)
    r = http.post("/v1/critiques", content=body, headers={"content-type": content_type})
    assert r.status_code == 200, r.text
    assert r.json()["prompt"] == "café scène"


# -- item 9: no server paths in messages ---------------------------------------------------
def test_refusals_name_no_server_path(critic: RunningCritic, stub, http, stills) -> None:
    server_paths = {str(critic.video_root), tempfile.gettempdir(), os.getcwd(), str(Path.home())}
    messages = []
    for data in (b"", b"not a video at all", stills["png"][:40], _growing_stream(320, 32)):
        err = _grpc_refusal(lambda d=data: _grpc_critique(stub, d))
        messages.append(err.details() or "")
        r = _http_critique(http, data)
        assert 400 <= r.status_code < 500
        messages.append(r.json()["error"]["message"])
    missing = (critic.video_root / "nope" / "missing.mp4").as_uri()
    for uri in (missing, "file:///etc/shadow", (critic.video_root / "..").as_uri()):
        req = critic_pb2.CritiqueRequest(video=common_pb2.VideoSource(uri=uri), prompt=PROMPT)
        err = _grpc_refusal(lambda q=req: stub.Critique(q, timeout=30))
        # Echoing what the caller sent (the URI, or its path) tells them nothing new.
        sent = unquote(urlsplit(uri).path)
        details = (err.details() or "").replace(uri, "<uri>").replace(sent, "<path>")
        messages.append(details)
    for message in messages:
        assert message, "every refusal says why"
        for path in server_paths:
            assert path not in message, (path, message)
