"""The critique: what the critic says about one video, as plain dataclasses.

These are the types every part of the suite shares (critic engine and
backends, both fronts, the Python client, the trainer). Conversion to and from
the wire lives here too, in one place: ``to_json``/``from_json`` for HTTP and
``to_proto``/``from_proto`` for gRPC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2
from lift.wire import duration, seconds


class Dimension(StrEnum):
    """The three LiFT dimensions."""

    SEMANTIC_CONSISTENCY = "semantic_consistency"
    MOTION_SMOOTHNESS = "motion_smoothness"
    VIDEO_FIDELITY = "video_fidelity"


class Label(StrEnum):
    """A verdict on one dimension."""

    GOOD = "good"
    NORMAL = "normal"
    BAD = "bad"
    UNASSESSED = "unassessed"


DIMENSIONS: tuple[Dimension, ...] = tuple(Dimension)
ASSESSED_LABELS: tuple[Label, ...] = (Label.GOOD, Label.NORMAL, Label.BAD)


@dataclass(frozen=True)
class LabelProbabilities:
    """Probabilities of good / normal / bad; they sum to 1."""

    good: float
    normal: float
    bad: float

    def __post_init__(self) -> None:
        total = self.good + self.normal + self.bad
        if min(self.good, self.normal, self.bad) < 0 or not math.isclose(total, 1.0, abs_tol=1e-4):
            raise ValueError(f"label probabilities must be >= 0 and sum to 1, got {self}")

    def most_likely(self) -> Label:
        """The label with the highest probability (ties go to the better label)."""
        best = max(
            ASSESSED_LABELS,
            key=lambda lab: (self.as_dict()[lab.value], -ASSESSED_LABELS.index(lab)),
        )
        return best

    def quality(self) -> float:
        """Score in [0, 1]: p_good + 0.5 * p_normal."""
        return self.good + 0.5 * self.normal

    def as_dict(self) -> dict[str, float]:
        """{"good": .., "normal": .., "bad": ..}."""
        return {"good": self.good, "normal": self.normal, "bad": self.bad}


@dataclass(frozen=True)
class Issue:
    """A defect with the span of the video where it happens."""

    tag: str
    start_s: float
    end_s: float
    severity: float


@dataclass(frozen=True)
class DimensionVerdict:
    """The verdict on one dimension."""

    name: Dimension
    label: Label
    score: float | None = None
    probabilities: LabelProbabilities | None = None
    reasons: tuple[str, ...] = ()
    issues: tuple[Issue, ...] = ()

    @classmethod
    def assessed(
        cls,
        name: Dimension,
        probs: LabelProbabilities,
        reasons: tuple[str, ...] = (),
        issues: tuple[Issue, ...] = (),
    ) -> DimensionVerdict:
        """A verdict whose label and score follow from ``probs``."""
        return cls(name, probs.most_likely(), probs.quality(), probs, reasons, issues)

    @classmethod
    def unassessed(cls, name: Dimension, reason: str) -> DimensionVerdict:
        """A dimension the backend cannot judge."""
        return cls(name, Label.UNASSESSED, reasons=(reason,))

    def without_reasons(self) -> DimensionVerdict:
        """The same verdict with reasons and issues dropped (Score responses)."""
        return DimensionVerdict(self.name, self.label, self.score, self.probabilities)


@dataclass(frozen=True)
class ModelInfo:
    """Which backend and model judged."""

    backend: str
    name: str
    version: str


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder found in the video."""

    frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    frames_analysed: int
    container: str = ""
    codec: str = ""


@dataclass(frozen=True)
class Critique:
    """A full critique of one video.

    ``reward`` is the video's Eq. 2 reward under the critic's reward map
    (:func:`lift.reward.video_reward`); None when no dimension was judged.
    """

    dimensions: tuple[DimensionVerdict, ...]
    reward: float | None
    model: ModelInfo
    video: VideoInfo
    prompt: str = ""
    dynamic_degree: float | None = None

    def dimension(self, name: Dimension | str) -> DimensionVerdict:
        """The verdict for ``name``."""
        for d in self.dimensions:
            if d.name == name:
                return d
        raise KeyError(name)

    def issues(self) -> list[Issue]:
        """Every issue over all dimensions."""
        return [i for d in self.dimensions for i in d.issues]


# ---------------------------------------------------------------- JSON (HTTP)


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def to_json(c: Critique) -> dict[str, Any]:
    """The critique as the HTTP API's JSON object."""
    return {
        "dimensions": [
            {
                "name": d.name.value,
                "label": d.label.value,
                "score": None if d.score is None else _r(d.score),
                "probabilities": None
                if d.probabilities is None
                else {k: _r(v) for k, v in d.probabilities.as_dict().items()},
                "reasons": list(d.reasons),
                "issues": [
                    {
                        "tag": i.tag,
                        "start_s": _r(i.start_s, 3),
                        "end_s": _r(i.end_s, 3),
                        "severity": _r(i.severity, 3),
                    }
                    for i in d.issues
                ],
            }
            for d in c.dimensions
        ],
        "reward": None if c.reward is None else _r(c.reward),
        "model": {"backend": c.model.backend, "name": c.model.name, "version": c.model.version},
        "video": {
            "frames": c.video.frames,
            "fps": _r(c.video.fps, 3),
            "duration_s": _r(c.video.duration_s, 3),
            "width": c.video.width,
            "height": c.video.height,
            "frames_analysed": c.video.frames_analysed,
            "container": c.video.container,
            "codec": c.video.codec,
        },
        "dynamic_degree": None if c.dynamic_degree is None else _r(c.dynamic_degree, 4),
        "prompt": c.prompt,
    }


def from_json(obj: dict[str, Any]) -> Critique:
    """Parse the HTTP API's JSON object back into a :class:`Critique`."""
    dims = []
    for d in obj["dimensions"]:
        p = d.get("probabilities")
        probs = LabelProbabilities(p["good"], p["normal"], p["bad"]) if p else None
        issues = tuple(
            Issue(i["tag"], i["start_s"], i["end_s"], i["severity"]) for i in d["issues"]
        )
        dims.append(
            DimensionVerdict(
                Dimension(d["name"]),
                Label(d["label"]),
                d.get("score"),
                probs,
                tuple(d.get("reasons", ())),
                issues,
            )
        )
    m, v = obj["model"], obj["video"]
    return Critique(
        dimensions=tuple(dims),
        reward=obj.get("reward"),
        model=ModelInfo(m["backend"], m["name"], m["version"]),
        video=VideoInfo(**v),
        prompt=obj.get("prompt", ""),
        dynamic_degree=obj.get("dynamic_degree"),
    )


# ---------------------------------------------------------------- protobuf (gRPC)

_DIM_TO_PB = {
    Dimension.SEMANTIC_CONSISTENCY: common_pb2.DIMENSION_SEMANTIC_CONSISTENCY,
    Dimension.MOTION_SMOOTHNESS: common_pb2.DIMENSION_MOTION_SMOOTHNESS,
    Dimension.VIDEO_FIDELITY: common_pb2.DIMENSION_VIDEO_FIDELITY,
}
_LABEL_TO_PB = {
    Label.GOOD: common_pb2.LABEL_GOOD,
    Label.NORMAL: common_pb2.LABEL_NORMAL,
    Label.BAD: common_pb2.LABEL_BAD,
    Label.UNASSESSED: common_pb2.LABEL_UNASSESSED,
}
_DIM_FROM_PB = {v: k for k, v in _DIM_TO_PB.items()}
_LABEL_FROM_PB = {v: k for k, v in _LABEL_TO_PB.items()}


def dimension_to_proto(d: Dimension) -> int:
    """The lift.common.v1.Dimension enum value of ``d``."""
    return _DIM_TO_PB[d]


def dimension_from_proto(value: int) -> Dimension:
    """The :class:`Dimension` of a lift.common.v1.Dimension enum value."""
    return _DIM_FROM_PB[value]  # type: ignore[index]


def to_proto(c: Critique) -> critic_pb2.Critique:
    """The critique as a lift.critic.v1.Critique message."""
    msg = critic_pb2.Critique(
        model=common_pb2.ModelInfo(
            backend=c.model.backend, name=c.model.name, version=c.model.version
        ),
        video=common_pb2.VideoInfo(
            frames=c.video.frames,
            fps=c.video.fps,
            duration=duration(c.video.duration_s),
            width=c.video.width,
            height=c.video.height,
            frames_analysed=c.video.frames_analysed,
            container=c.video.container,
            codec=c.video.codec,
        ),
        prompt=c.prompt,
    )
    if c.reward is not None:
        msg.reward = c.reward
    if c.dynamic_degree is not None:
        msg.dynamic_degree = c.dynamic_degree
    for d in c.dimensions:
        pd = msg.dimensions.add(name=_DIM_TO_PB[d.name], label=_LABEL_TO_PB[d.label])
        if d.score is not None:
            pd.score = d.score
        if d.probabilities is not None:
            pd.probabilities.CopyFrom(common_pb2.LabelProbabilities(**d.probabilities.as_dict()))
        pd.reasons.extend(d.reasons)
        for i in d.issues:
            pd.issues.add(
                tag=i.tag,
                start=duration(i.start_s),
                end=duration(i.end_s),
                severity=i.severity,
            )
    return msg


def from_proto(msg: critic_pb2.Critique) -> Critique:
    """Parse a lift.critic.v1.Critique message."""
    dims = []
    for pd in msg.dimensions:
        probs = None
        if pd.HasField("probabilities"):
            p = pd.probabilities
            probs = LabelProbabilities(p.good, p.normal, p.bad)
        dims.append(
            DimensionVerdict(
                _DIM_FROM_PB[pd.name],
                _LABEL_FROM_PB[pd.label],
                pd.score if pd.HasField("score") else None,
                probs,
                tuple(pd.reasons),
                tuple(
                    Issue(i.tag, seconds(i.start), seconds(i.end), i.severity) for i in pd.issues
                ),
            )
        )
    v = msg.video
    return Critique(
        dimensions=tuple(dims),
        reward=msg.reward if msg.HasField("reward") else None,
        model=ModelInfo(msg.model.backend, msg.model.name, msg.model.version),
        video=VideoInfo(
            v.frames,
            v.fps,
            seconds(v.duration),
            v.width,
            v.height,
            v.frames_analysed,
            v.container,
            v.codec,
        ),
        prompt=msg.prompt,
        dynamic_degree=msg.dynamic_degree if msg.HasField("dynamic_degree") else None,
    )
