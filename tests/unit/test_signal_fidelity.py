"""The signal critic's video fidelity on real footage: absolute, monotone, no false alarms.

Windows of the real clips in tests/data/real (a camera montage at 640x272 and
an animation at 1280x720, shown at half size to keep the test fast) are
re-encoded near-losslessly (the clean reference) and with one defect at
growing strength; the fidelity score must fall strictly with the strength and
the clean windows must be good with no fidelity finding.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from lift.critique import Dimension, DimensionVerdict, Label
from lift.services.critic.backends.signal import SignalBackend
from lift.services.critic.backends.signal.fidelity import NATURAL_SCENE, FidelityRules
from lift.services.critic.backends.signal.measure import measure
from lift.services.critic.backends.signal.quality import curvature, fine_frame, noise_sigma, slope
from lift.serving import Deadline
from lift.video import VideoLimits, decode_video
from tools.signal_quality import fit

REAL = Path(__file__).resolve().parents[1] / "data" / "real"
FID = Dimension.VIDEO_FIDELITY
FPS = 25.0
# (clip, first frame, frames, scale): inside one shot of each clip.
WINDOWS = {"bikes": ("bikes.mp4", 34, 14, 1.0), "bunny": ("bigbuckbunny.mp4", 10, 14, 0.5)}


def _rgb_window(name: str) -> list[np.ndarray]:
    clip, first, count, scale = WINDOWS[name]
    with av.open(io.BytesIO((REAL / clip).read_bytes()), "r") as c:
        frames: list[np.ndarray] = []
        for i, f in enumerate(c.decode(video=0)):
            if i >= first + count:
                break
            if i >= first:
                frames.append(f.to_ndarray(format="rgb24"))
    if scale != 1.0:
        h, w = frames[0].shape[:2]
        size = (round(w * scale) // 2 * 2, round(h * scale) // 2 * 2)
        frames = [np.asarray(cv2.resize(f, size, interpolation=cv2.INTER_AREA)) for f in frames]
    return frames


def _encode(frames: list[np.ndarray], crf: int = 12, preset: str = "ultrafast") -> bytes:
    h, w = frames[0].shape[:2]
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=Fraction(int(FPS)))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf), "preset": preset, "threads": "2"}
        for f in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(s.encode())
    return buf.getvalue()


def _fidelity(data: bytes) -> DimensionVerdict:
    video = decode_video(data, VideoLimits(), pixel_format="gray")
    judged = SignalBackend().prepare(video, "a real video", Deadline().check)
    return next(d for d in judged.dimensions if d.name == FID)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0, 255).astype(np.uint8)


def _blur(frames: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    return [cv2.GaussianBlur(f, (0, 0), sigmaX=sigma) for f in frames]


def _noise(frames: list[np.ndarray], sigma: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [_u8(f + rng.normal(0.0, sigma, f.shape)) for f in frames]


def _flicker(frames: list[np.ndarray], amp: float) -> list[np.ndarray]:
    return [
        _u8(f * (1.0 + amp * math.sin(2 * math.pi * 6.0 * i / FPS))) for i, f in enumerate(frames)
    ]


def _exposure(frames: list[np.ndarray], gain: float, offset: float) -> list[np.ndarray]:
    return [_u8(f.astype(np.float32) * gain + offset) for f in frames]


SWEEPS: dict[str, list[tuple[float, float]]] = {
    "blur": [(1.0, 0), (2.0, 0), (4.0, 0)],
    "noise": [(3.0, 0), (6.0, 0), (12.0, 0)],
    "compression": [(30, 0), (40, 0), (50, 0)],
    "flicker": [(0.03, 0), (0.08, 0), (0.2, 0)],
    "overexposure": [(1.3, 15), (1.6, 30), (2.0, 40)],
    "underexposure": [(0.6, -20), (0.45, -30), (0.3, -40)],
}
"""Per defect kind, the parameters of its growing strengths (see :func:`_defect`)."""


def _defect(kind: str, frames: list[np.ndarray], p: float, q: float) -> bytes:
    """``frames`` with ``kind`` injected at parameters (p, q), encoded."""
    if kind == "blur":
        return _encode(_blur(frames, p))
    if kind == "noise":
        return _encode(_noise(frames, p))
    if kind == "compression":
        return _encode(frames, int(p), "veryfast")
    if kind == "flicker":
        return _encode(_flicker(frames, p))
    return _encode(_exposure(frames, p, q))


@pytest.fixture(scope="module")
def windows() -> dict[str, list[np.ndarray]]:
    return {name: _rgb_window(name) for name in WINDOWS}


@pytest.fixture(scope="module")
def clean(windows: dict[str, list[np.ndarray]]) -> dict[str, DimensionVerdict]:
    return {name: _fidelity(_encode(frames)) for name, frames in windows.items()}


def test_clean_real_windows_are_good_with_no_fidelity_finding(clean) -> None:
    for name, verdict in clean.items():
        assert verdict.label is Label.GOOD, (name, verdict)
        assert verdict.issues == (), (name, verdict.issues)
        assert verdict.score is not None and verdict.score > 0.75, (name, verdict.score)


@pytest.mark.parametrize("kind", sorted(SWEEPS))
@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_sweep_lowers_the_score_strictly(windows, clean, name: str, kind: str) -> None:
    scores = [clean[name].score]
    verdicts = [_fidelity(_defect(kind, windows[name], p, q)) for p, q in SWEEPS[kind]]
    scores += [v.score for v in verdicts]
    assert all(a > b for a, b in itertools.pairwise(scores)), (kind, scores)
    # The strongest level is a defect a viewer sees: named, or the label drops.
    assert verdicts[-1].issues or verdicts[-1].label is not Label.GOOD, (kind, verdicts[-1])


def test_low_bitrate_reencode_scores_lower_than_its_source(windows, clean) -> None:
    for name, frames in windows.items():
        low = _fidelity(_encode(frames, 46, "veryfast"))
        assert low.score is not None and clean[name].score is not None
        assert low.score < clean[name].score - 0.1, (name, low.score, clean[name].score)


def _fidelity_rules(frames: list[np.ndarray]) -> FidelityRules:
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    m = measure(gray, np.arange(len(frames)) / FPS)
    return FidelityRules(m).run()


def _underexposure(rules: FidelityRules) -> tuple[float, bool]:
    b = next(e.badness for e in rules.evidence if e.tag == "underexposure")
    return b, any(f.tag == "underexposure" for f in rules.findings)


def test_dark_subject_is_not_underexposed_but_a_dim_picture_is(windows) -> None:
    frames = windows["bikes"]
    h, w = frames[0].shape[:2]
    dark = []
    for f in frames:
        g = f.copy()
        g[h // 4 :, w // 3 : 2 * w // 3] = 4  # a subject in black clothing: a third of the frame
        dark.append(g)
    b, found = _underexposure(_fidelity_rules(dark))
    assert not found and b < 0.3, b
    b_dim, found_dim = _underexposure(_fidelity_rules(_exposure(frames, 0.4, -30)))
    assert found_dim and b_dim > 1.0, b_dim


def test_noise_estimate_is_strictly_monotone_in_sigma(windows) -> None:
    gray = cv2.cvtColor(windows["bikes"][0], cv2.COLOR_RGB2GRAY)
    rng = np.random.default_rng(1)
    estimates = []
    for sigma in (0.0, 1.0, 2.0, 4.0, 8.0):
        fine = fine_frame(_u8(gray + rng.normal(0.0, sigma, gray.shape)))
        estimates.append(noise_sigma(curvature(fine), slope(fine)))
    assert all(a < b for a, b in itertools.pairwise(estimates)), estimates


def test_natural_scene_model_is_the_fit_of_the_pristine_pictures() -> None:
    doc = fit.fit(sorted(fit.PRISTINE.glob("*.png")))
    assert fit.render(doc) == NATURAL_SCENE.read_text()
    stored = json.loads(NATURAL_SCENE.read_text())
    assert 0.3 < stored["pristine"]["edge_width"] < 0.9
    assert len(stored["per_picture"]) >= 6


@pytest.mark.parametrize("width", [128, 192, 256])
def test_small_clean_pictures_do_not_read_as_noisy_but_added_noise_does(windows, width) -> None:
    """In a small picture texture reaches the flattest pixels: the noise floor follows size."""
    for name, frames in windows.items():
        h, w = frames[0].shape[:2]
        size = (width, round(h * width / w) // 2 * 2)
        small = [np.asarray(cv2.resize(f, size, interpolation=cv2.INTER_AREA)) for f in frames]
        clean_small = _fidelity(_encode(small))
        assert "noise" not in {i.tag for i in clean_small.issues}, (name, width, clean_small)
        noisy = _fidelity(_encode(_noise(small, 8.0)))
        assert "noise" in {i.tag for i in noisy.issues}, (name, width, noisy)
        assert noisy.score is not None and clean_small.score is not None
        assert noisy.score < clean_small.score
