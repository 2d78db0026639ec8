"""A synthetic, seeded rating set whose rule a person can see in the frames.

Every clip shows one large coloured shape moving across a checkered wall while the camera
pans, and is rated on all three LiFT dimensions by a fixed rule:

* ``video_fidelity``: Bad when heavy noise covers the frames or they are blurred, else Good;
* ``motion_smoothness``: Bad when the video freezes (the picture stops changing) early in
  the clip, else Good;
* ``semantic_consistency``: Bad when the caption names another colour than the one shown
  (with ``objects=True`` also another shape), else Good.

Each (dimension, case) has one reason from a small fixed set (:data:`REASONS`), so a
critic trained on the set can be checked to answer with training reasons only. The
defects are independent, so no dimension can be read off another. Written as LiFT-HRA
JSON lines (``train.jsonl`` / ``test.jsonl``, split by video) beside ``videos/*.mp4``;
``lift critic train`` and the demo use it, and so does the rule test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lift.critique import Dimension, Label
from lift.templates import VIDEO_MARKER, Templates, load_templates
from lift.video.encode import encode_video

SIZE = 56  # the tiny critic's smallest frame (56x56: 4x4 patches of 14)
FRAMES, FPS = 16, 8.0
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "blue": (30, 60, 220),
    "green": (30, 190, 40),
}
SHAPES = ("circle", "square")

REASONS: dict[tuple[Dimension, str], str] = {
    (Dimension.VIDEO_FIDELITY, "clean"): "The frames are sharp and clean.",
    (Dimension.VIDEO_FIDELITY, "noise"): "The frames are full of noise.",
    (Dimension.VIDEO_FIDELITY, "blur"): "The video is blurry.",
    (Dimension.MOTION_SMOOTHNESS, "moving"): "The shape moves smoothly.",
    (Dimension.MOTION_SMOOTHNESS, "frozen"): "The shape freezes in place.",
    (Dimension.SEMANTIC_CONSISTENCY, "match"): "The video shows what the caption says.",
    (Dimension.SEMANTIC_CONSISTENCY, "colour"): "The shape has another colour.",
    (Dimension.SEMANTIC_CONSISTENCY, "shape"): "The video shows another shape.",
}
"""The one reason for each (dimension, case): every training reason there is."""


@dataclass(frozen=True)
class RuleClip:
    """One clip's content and its cases on the three dimensions."""

    name: str
    colour: str
    shape: str
    caption: str
    fidelity: str
    """clean, noise or blur."""
    motion: str
    """moving or frozen."""
    semantics: str
    """match, colour (the caption names another colour) or shape (another shape)."""

    def rating(self, dimension: Dimension) -> tuple[Label, str]:
        """The rule's label and reason on ``dimension``."""
        case = {
            Dimension.VIDEO_FIDELITY: self.fidelity,
            Dimension.MOTION_SMOOTHNESS: self.motion,
            Dimension.SEMANTIC_CONSISTENCY: self.semantics,
        }[dimension]
        good = case in ("clean", "moving", "match")
        return (Label.GOOD if good else Label.BAD), REASONS[(dimension, case)]


def _plan(rng: np.random.Generator, index: int, objects: bool) -> RuleClip:
    colour = str(rng.choice(list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    fidelity = str(rng.choice(["clean", "clean", "noise", "blur"]))
    motion = str(rng.choice(["moving", "frozen"]))
    mismatch = ["colour", "shape"] if objects else ["colour", "colour"]
    semantics = str(rng.choice(["match", "match", *mismatch]))
    said_colour, said_shape = colour, shape
    if semantics == "colour":
        said_colour = str(rng.choice([c for c in COLOURS if c != colour]))
    elif semantics == "shape":
        said_shape = next(s for s in SHAPES if s != shape)
    caption = f"A {said_colour} {said_shape} moves across a checkered wall."
    return RuleClip(f"clip{index:04d}", colour, shape, caption, fidelity, motion, semantics)


def _blur(frame: np.ndarray, radius: int) -> np.ndarray:
    """A separable box blur applied twice (close to a Gaussian), edges clamped."""
    out: np.ndarray = frame.astype(np.float32)
    k = 2 * radius + 1
    for _ in range(2):
        for axis in (0, 1):
            pad = [(radius, radius) if a == axis else (0, 0) for a in range(3)]
            padded = np.pad(out, pad, mode="edge")
            csum = np.cumsum(padded, axis=axis, dtype=np.float32)
            csum = np.concatenate([np.zeros_like(np.take(csum, [0], axis=axis)), csum], axis=axis)
            n = out.shape[axis]
            out = (
                np.take(csum, np.arange(k, n + k), axis=axis)
                - np.take(csum, np.arange(n), axis=axis)
            ) / k
    return out


def render(clip: RuleClip, rng: np.random.Generator) -> np.ndarray:
    """The clip's (FRAMES, SIZE, SIZE, 3) uint8 RGB frames."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    radius = 16.0
    start = rng.uniform(radius + 2, SIZE - radius - 2, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(3.0, 4.0)  # pixels per frame, bouncing off the edges
    velocity = speed * np.array([np.cos(angle), np.sin(angle)])
    freeze_at = int(rng.integers(1, FRAMES // 4)) if clip.motion == "frozen" else FRAMES
    colour = np.array(COLOURS[clip.colour], dtype=np.float32)
    lo, hi = radius + 1, SIZE - radius - 1
    pos = start.copy()
    # The camera pans over a checkered wall (blur visibly erases it; a freeze stops it all).
    pan_angle = rng.uniform(0, 2 * np.pi)
    pan = rng.uniform(2.0, 3.0) * np.array([np.cos(pan_angle), np.sin(pan_angle)])
    frames: list[np.ndarray] = []
    for t in range(FRAMES):
        if t >= freeze_at:
            frames.append(frames[-1])  # frozen: the same picture repeats
            continue
        ox, oy = pan * t
        checks = (np.floor((xs + ox) / 8) + np.floor((ys + oy) / 8)) % 2
        bg: np.ndarray = np.where(checks > 0, 150.0, 100.0).astype(np.float32)[..., None]
        bg = bg.repeat(3, axis=2)
        if clip.shape == "circle":
            inside = (xs - pos[0]) ** 2 + (ys - pos[1]) ** 2 <= radius**2
        else:
            inside = (np.abs(xs - pos[0]) <= radius * 0.85) & (np.abs(ys - pos[1]) <= radius * 0.85)
        bg[inside] = colour
        if clip.fidelity == "noise":
            bg = bg + rng.normal(0.0, 55.0, size=bg.shape)
        elif clip.fidelity == "blur":
            bg = _blur(bg, 3)
        frames.append(np.clip(bg, 0, 255).astype(np.uint8))
        pos = pos + velocity
        for axis in (0, 1):  # bounce
            if not lo <= pos[axis] <= hi:
                velocity[axis] = -velocity[axis]
                pos[axis] = min(max(pos[axis], lo), hi)
    return np.stack(frames)


def record(clip: RuleClip, dimension: Dimension, templates: Templates) -> dict[str, object]:
    """The LiFT-HRA record of ``clip`` rated on ``dimension``."""
    label, reason = clip.rating(dimension)
    question = templates.question(dimension, clip.caption)
    return {
        "id": f"{clip.name}-{dimension.value}",
        "video": f"videos/{clip.name}.mp4",
        "dimension": dimension.value,
        "prompt": clip.caption,
        "conversations": [
            {"from": "human", "value": f"{VIDEO_MARKER}\n{question}"},
            {"from": "gpt", "value": templates.answer_prefix(label) + reason},
        ],
    }


def write_rule_data(
    directory: Path, train: int = 48, test: int = 24, seed: int = 0, objects: bool = False
) -> tuple[Path, Path]:
    """Write ``train`` + ``test`` rated clips into ``directory``; (train.jsonl, test.jsonl).

    About half the captions name another colour than shown (semantics Bad); with ``objects``
    half of those name another shape instead (a harder rule: the tiny 2-layer random critic
    does not learn circle-vs-square in a CPU-sized run).
    The same ``seed`` gives the same clips, captions and ratings (the mp4 bytes too: the
    encoder is deterministic).
    """
    if train < 1 or test < 1:
        raise ValueError("train and test need at least one clip each")
    templates = load_templates()
    rng = np.random.default_rng(seed)
    (directory / "videos").mkdir(parents=True, exist_ok=True)
    paths = []
    for split, count, offset in (("train", train, 0), ("test", test, train)):
        lines = []
        for i in range(offset, offset + count):
            clip = _plan(rng, i, objects)
            frames = render(clip, rng)
            (directory / "videos" / f"{clip.name}.mp4").write_bytes(encode_video(frames, FPS))
            lines += [json.dumps(record(clip, d, templates)) for d in Dimension]
        path = directory / f"{split}.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def training_reasons() -> set[str]:
    """Every reason the rule data holds."""
    return set(REASONS.values())


__all__ = ["REASONS", "RuleClip", "render", "training_reasons", "write_rule_data"]
