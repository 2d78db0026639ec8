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
    fps_analysed: float = 0.0
    """Rate of the analysed frames (1 / their mean gap, s); 0 for one frame."""


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


@dataclass(frozen=True)
class Preference:
    """How likely video a, video b, or neither is better; the three sum to 1.

    All None when nothing could be compared (a dimension either video has
    unassessed); ``prob_tie`` alone is None when the method has no notion of a
    tie (then ``prob_a + prob_b == 1``).
    """

    prob_a: float | None = None
    prob_b: float | None = None
    prob_tie: float | None = None

    def __post_init__(self) -> None:
        if (self.prob_a is None) != (self.prob_b is None):
            raise ValueError(f"prob_a and prob_b are both set or both None, got {self}")
        if self.prob_a is None:
            if self.prob_tie is not None:
                raise ValueError(f"a tie without prob_a / prob_b: {self}")
            return
        parts = [self.prob_a, self.prob_b or 0.0, self.prob_tie or 0.0]
        if min(parts) < 0 or not math.isclose(sum(parts), 1.0, abs_tol=1e-4):
            raise ValueError(f"preference probabilities must be >= 0 and sum to 1, got {self}")

    @property
    def compared(self) -> bool:
        """Whether there are probabilities (False: not comparable)."""
        return self.prob_a is not None

    def swapped(self) -> Preference:
        """The same preference with a and b exchanged."""
        return Preference(self.prob_b, self.prob_a, self.prob_tie)


@dataclass(frozen=True)
class DimensionPreference:
    """The preference on one dimension."""

    name: Dimension
    preference: Preference = Preference()


@dataclass(frozen=True)
class Comparison:
    """Which of two videos of one prompt is better, per dimension and overall.

    ``method`` says how the probabilities came about (e.g.
    ``"bradley_terry_expected_reward"``, or ``"native"`` when the model judged
    the pair itself); ``video_a`` / ``video_b`` what the decoder found and the
    frames the backend used.
    """

    dimensions: tuple[DimensionPreference, ...]
    overall: Preference
    method: str
    model: ModelInfo
    video_a: VideoInfo
    video_b: VideoInfo
    prompt: str = ""

    def dimension(self, name: Dimension | str) -> Preference:
        """The preference on ``name``."""
        for d in self.dimensions:
            if d.name == name:
                return d.preference
        raise KeyError(name)


# ---------------------------------------------------------------- JSON (HTTP)


def _r(x: float, nd: int = 6) -> float:
    return round(float(x), nd)


def video_to_json(v: VideoInfo) -> dict[str, Any]:
    """What the decoder found, as the HTTP API's JSON object."""
    return {
        "frames": v.frames,
        "fps": _r(v.fps, 3),
        "duration_s": _r(v.duration_s, 3),
        "width": v.width,
        "height": v.height,
        "frames_analysed": v.frames_analysed,
        "container": v.container,
        "codec": v.codec,
        "fps_analysed": _r(v.fps_analysed, 3),
    }


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
        "video": video_to_json(c.video),
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


def video_to_proto(v: VideoInfo) -> common_pb2.VideoInfo:
    """``v`` as a lift.common.v1.VideoInfo message."""
    return common_pb2.VideoInfo(
        frames=v.frames,
        fps=v.fps,
        duration=duration(v.duration_s),
        width=v.width,
        height=v.height,
        frames_analysed=v.frames_analysed,
        container=v.container,
        codec=v.codec,
        fps_analysed=v.fps_analysed,
    )


def video_from_proto(v: common_pb2.VideoInfo) -> VideoInfo:
    """Parse a lift.common.v1.VideoInfo message."""
    return VideoInfo(
        v.frames,
        v.fps,
        seconds(v.duration),
        v.width,
        v.height,
        v.frames_analysed,
        v.container,
        v.codec,
        v.fps_analysed,
    )


def to_proto(c: Critique) -> critic_pb2.Critique:
    """The critique as a lift.critic.v1.Critique message."""
    msg = critic_pb2.Critique(
        model=common_pb2.ModelInfo(
            backend=c.model.backend, name=c.model.name, version=c.model.version
        ),
        video=video_to_proto(c.video),
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
    return Critique(
        dimensions=tuple(dims),
        reward=msg.reward if msg.HasField("reward") else None,
        model=ModelInfo(msg.model.backend, msg.model.name, msg.model.version),
        video=video_from_proto(msg.video),
        prompt=msg.prompt,
        dynamic_degree=msg.dynamic_degree if msg.HasField("dynamic_degree") else None,
    )


# ---------------------------------------------------------------- comparisons


def _p(x: float | None) -> float | None:
    return None if x is None else _r(x)


def _pref_json(p: Preference) -> dict[str, float | None]:
    return {"prob_a": _p(p.prob_a), "prob_b": _p(p.prob_b), "prob_tie": _p(p.prob_tie)}


def comparison_to_json(c: Comparison) -> dict[str, Any]:
    """The comparison as the HTTP API's JSON object (POST /v1/comparisons)."""
    return {
        "dimensions": [{"name": d.name.value, **_pref_json(d.preference)} for d in c.dimensions],
        "overall": _pref_json(c.overall),
        "method": c.method,
        "model": {"backend": c.model.backend, "name": c.model.name, "version": c.model.version},
        "videos": {"a": video_to_json(c.video_a), "b": video_to_json(c.video_b)},
        "prompt": c.prompt,
    }


def _pref_from(obj: dict[str, Any]) -> Preference:
    return Preference(obj.get("prob_a"), obj.get("prob_b"), obj.get("prob_tie"))


def comparison_from_json(obj: dict[str, Any]) -> Comparison:
    """Parse the HTTP API's JSON object back into a :class:`Comparison`."""
    m, v = obj["model"], obj["videos"]
    return Comparison(
        dimensions=tuple(
            DimensionPreference(Dimension(d["name"]), _pref_from(d)) for d in obj["dimensions"]
        ),
        overall=_pref_from(obj["overall"]),
        method=obj["method"],
        model=ModelInfo(m["backend"], m["name"], m["version"]),
        video_a=VideoInfo(**v["a"]),
        video_b=VideoInfo(**v["b"]),
        prompt=obj.get("prompt", ""),
    )


def _fill_pref(msg: Any, p: Preference) -> None:
    for field in ("prob_a", "prob_b", "prob_tie"):
        value = getattr(p, field)
        if value is not None:
            setattr(msg, field, value)


def _pref_from_proto(msg: Any) -> Preference:
    def get(field: str) -> float | None:
        return getattr(msg, field) if msg.HasField(field) else None

    return Preference(get("prob_a"), get("prob_b"), get("prob_tie"))


def comparison_to_proto(c: Comparison) -> critic_pb2.Comparison:
    """The comparison as a lift.critic.v1.Comparison message."""
    msg = critic_pb2.Comparison(
        method=c.method,
        model=common_pb2.ModelInfo(
            backend=c.model.backend, name=c.model.name, version=c.model.version
        ),
        video_a=video_to_proto(c.video_a),
        video_b=video_to_proto(c.video_b),
        prompt=c.prompt,
    )
    _fill_pref(msg.overall, c.overall)
    for d in c.dimensions:
        _fill_pref(msg.dimensions.add(name=_DIM_TO_PB[d.name]), d.preference)
    return msg


def comparison_from_proto(msg: critic_pb2.Comparison) -> Comparison:
    """Parse a lift.critic.v1.Comparison message."""
    return Comparison(
        dimensions=tuple(
            DimensionPreference(_DIM_FROM_PB[d.name], _pref_from_proto(d)) for d in msg.dimensions
        ),
        overall=_pref_from_proto(msg.overall),
        method=msg.method,
        model=ModelInfo(msg.model.backend, msg.model.name, msg.model.version),
        video_a=video_from_proto(msg.video_a),
        video_b=video_from_proto(msg.video_b),
        prompt=msg.prompt,
    )
