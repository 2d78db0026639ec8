"""The signal critic's motion rules on real footage (tests/data/real, see its README).

Windows of the real clips are re-encoded with libx264 (near-lossless, as the
benchmark carries them) and judged clean, with frames held, dropped or
spliced, and with jittered presentation timestamps. Ground truth is computed
here, independently of the critic (cuts: a plain full-frame difference).
"""

from __future__ import annotations

import io
import itertools
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lift.critique import Dimension
from lift.services.critic.backends.signal import SignalBackend
from lift.services.critic.backends.signal.measure import measure
from lift.services.critic.backends.signal.motion import MotionRules
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
FPS = 25.0
MOTION_TAGS = {"frozen_frames", "stutter", "judder", "abrupt_cut", "static_video"}

Frames = list[np.ndarray]


def _decode(path: Path, width: int | None = None) -> Frames:
    """Every frame of ``path`` as RGB, optionally resized to ``width`` (aspect kept)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        out = []
        for f in c.decode(stream):
            if width is None:
                out.append(f.to_ndarray(format="rgb24"))
            else:
                h = round(f.height * width / f.width / 2) * 2
                out.append(f.to_ndarray(format="rgb24", width=width, height=h))
    return out


def _encode(frames: Frames, times: np.ndarray | None = None) -> bytes:
    """H.264 (CRF 12, ultrafast) in MP4 at 25 fps, or at ``times`` (s) when given."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=int(FPS))
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast", "threads": "2"}
        for i, f in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            t = i / FPS if times is None else float(times[i])
            frame.pts, frame.time_base = round(t * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def _rules(data: bytes) -> MotionRules:
    video = decode_video(
        data, VideoLimits(), max_samples=SignalBackend().max_frames, pixel_format="gray"
    )
    return MotionRules(measure(video.frames, video.timestamps)).run()


def _found(rules: MotionRules, tag: str) -> list[tuple[float, float]]:
    return [(f.start_s, f.end_s) for f in rules.findings if f.tag == tag]


def _motion_score(data: bytes) -> float:
    backend = SignalBackend()
    video = decode_video(data, VideoLimits(), max_samples=backend.max_frames, pixel_format="gray")
    judgement = backend.prepare(video, "a real video", Deadline().check)
    verdict = next(d for d in judgement.dimensions if d.name == Dimension.MOTION_SMOOTHNESS)
    assert verdict.score is not None
    return float(verdict.score)


def _shot_starts(frames: Frames) -> list[int]:
    """First frames of new shots: a full-frame grey difference far above the clip's typical."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY).astype(np.float32) for f in frames]
    diff = np.array([np.abs(b - a).mean() for a, b in itertools.pairwise(gray)])
    return [int(i) + 1 for i in np.flatnonzero((diff > 25.0) & (diff > 5.0 * np.median(diff)))]


@pytest.fixture(scope="module")
def bikes() -> Frames:
    return _decode(REAL / "bikes.mp4")


@pytest.fixture(scope="module")
def bunny() -> Frames:
    return _decode(REAL / "bigbuckbunny.mp4", width=640)


def _shot(frames: Frames, at: int) -> tuple[int, int]:
    """The [first, last] frames of the shot holding frame ``at``."""
    starts = [0, *_shot_starts(frames), len(frames)]
    i = max(k for k in range(len(starts) - 1) if starts[k] <= at)
    return starts[i], starts[i + 1] - 1


def _hold(frames: Frames, at: int, run: int) -> Frames:
    """Frame ``at`` shown ``run`` times; the frames it covers are lost (the length is kept)."""
    return frames[:at] + [frames[at]] * run + frames[at + run :]


def _drop(
    frames: Frames, per_jolt: int, every: int = 6, first: int = 5
) -> tuple[Frames, list[int]]:
    """``per_jolt`` frames dropped after every ``every`` kept frames; output frames after a jolt."""
    keep, jolts, i = np.ones(len(frames), bool), [], first
    while i + per_jolt < len(frames) - 1:
        keep[i : i + per_jolt] = False
        jolts.append(int(keep[:i].sum()))
        i += per_jolt + every
    return [f for f, k in zip(frames, keep, strict=True) if k], jolts


def test_whole_bunny_clip_has_no_motion_finding() -> None:
    # The source repeats one frame a second (24 -> 25 fps): not a defect on its own.
    rules = _rules((REAL / "bigbuckbunny.mp4").read_bytes())
    assert rules.findings == []
    evidence = {e.tag: e.badness for e in rules.evidence}
    assert int(rules.held.sum()) >= 4  # the repeats are seen...
    assert evidence["stutter"] <= 0.5  # ...and tolerated
    assert max(evidence.values()) < 1.0


def test_a_sampled_timeline_is_not_called_juddery() -> None:
    # 64 of 132 frames (the engine's default cap): steps of 2 and 3 source frames.
    data = (REAL / "bigbuckbunny.mp4").read_bytes()
    video = decode_video(data, VideoLimits(), max_samples=64, pixel_format="gray")
    assert len(set(np.round(np.diff(video.timestamps) * FPS).astype(int))) > 1
    rules = MotionRules(measure(video.frames, video.timestamps)).run()
    assert rules.findings == []


def test_montage_cuts_are_located_to_the_frame_and_nothing_else(bikes: Frames) -> None:
    data = (REAL / "bikes.mp4").read_bytes()
    video = decode_video(data, VideoLimits(), max_samples=SignalBackend().max_frames)
    assert video.num_sampled == len(bikes)  # every frame analysed
    truth = _shot_starts(bikes)
    assert len(truth) == 5
    rules = _rules(data)
    cuts = sorted(start for start, _ in _found(rules, "abrupt_cut"))
    assert cuts == pytest.approx([float(video.timestamps[i]) for i in truth], abs=1e-3)
    assert {f.tag for f in rules.findings} == {"abrupt_cut"}


@pytest.mark.parametrize(("clip", "at"), [("bikes", 78), ("bikes", 140), ("bunny", 30)])
def test_clean_windows_have_no_motion_finding(
    bikes: Frames, bunny: Frames, clip: str, at: int
) -> None:
    # bikes@78 is hand-held: the camera shakes, the frame timing is fine.
    frames = bikes if clip == "bikes" else bunny
    rules = _rules(_encode(frames[at : at + 40]))
    assert [f.tag for f in rules.findings] == []
    assert max(e.badness for e in rules.evidence) < 1.0


def test_dropped_frames_are_judder_near_where_they_were_dropped(bikes: Frames) -> None:
    a, b = _shot(bikes, 80)
    shot = bikes[a + 2 : b - 1]
    juddery, jolts = _drop(shot, 1)
    rules = _rules(_encode(juddery))
    spans = _found(rules, "judder")
    assert spans, rules.findings
    jolt_s = [j / FPS for j in jolts]
    covered = [t for t in jolt_s if any(s - 0.05 <= t <= e + 0.05 for s, e in spans)]
    assert len(covered) >= len(jolt_s) - 2
    assert all(any(abs(t - s) < 0.3 for t in jolt_s) for s, _ in spans)


@pytest.mark.parametrize("run", [3, 24])
def test_held_frames_are_frozen_with_their_span(bikes: Frames, run: int) -> None:
    window = bikes[140:180]
    rules = _rules(_encode(_hold(window, 10, run)))
    spans = _found(rules, "frozen_frames")
    assert len(spans) == 1, rules.findings
    start, end = spans[0]
    # Frames 10 .. 10 + run - 1 show one picture.
    assert start == pytest.approx(10 / FPS, abs=0.5 / FPS)
    assert end == pytest.approx((10 + run) / FPS, abs=1.01 / FPS)
    assert "judder" not in {f.tag for f in rules.findings}


def test_jittered_timestamps_are_judder(bikes: Frames) -> None:
    window = bikes[140:180]
    even = np.arange(len(window)) / FPS
    jitter = np.where(np.arange(len(window)) % 2 == 1, 0.35 / FPS, 0.0)
    rules = _rules(_encode(window, even + jitter))
    judder = [f for f in rules.findings if f.tag == "judder"]
    assert judder and "timestamps" in judder[0].reason
    assert _found(_rules(_encode(window, even)), "judder") == []


def test_motion_score_falls_strictly_with_each_defect(bikes: Frames, bunny: Frames) -> None:
    window = bikes[140:180]
    held = [_motion_score(_encode(_hold(window, 10, run))) for run in (3, 6, 12, 24)]
    assert all(x > y for x, y in itertools.pairwise(held)), held

    a, b = _shot(bikes, 80)
    shot = bikes[a + 2 : b - 1]
    dropped = [_motion_score(_encode(_drop(shot, k)[0])) for k in (1, 2, 3, 4)]
    assert all(x > y for x, y in itertools.pairwise(dropped)), dropped

    other = [cv2.resize(f, (window[0].shape[1], window[0].shape[0])) for f in bunny[30:70]]
    spliced = []
    for points in (1, 2, 3):
        seg = len(window) / (points + 1)
        mixed = [(window if int(i / seg) % 2 == 0 else other)[i] for i in range(len(window))]
        spliced.append(_motion_score(_encode(mixed)))
    assert all(x > y for x, y in itertools.pairwise(spliced)), spliced
    clean = _motion_score(_encode(window))
    assert clean > max(held[0], spliced[0])
