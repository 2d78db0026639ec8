"""Wire models of the critic's HTTP API (pydantic), converted at the edge only.

Requests: :class:`VideoJSON` (JSON) or :class:`CritiqueForm` (multipart) for
``POST /v1/critiques``, :class:`ScoreJSON` for ``POST /v1/scores``, :class:`CompareJSON`
or :class:`CompareForm` for ``POST /v1/comparisons``. Responses: :class:`CritiqueJSON`,
:class:`ScoresJSON`, :class:`ComparisonJSON`, :class:`CriticInfoJSON`. A critique's JSON
is written once, by :func:`lift.critique.to_json` (a comparison's by
:func:`lift.critique.comparison_to_json`); :meth:`CritiqueJSON.of` validates that dict,
so the model documents and checks the contract without restating it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lift.critique import Comparison, Critique, Dimension, Label, comparison_to_json, to_json
from lift.errors import InvalidInput
from lift.http import ErrorResponse, schema_examples
from lift.services.critic.engine import CriticInfo, VideoSource

_PROMPT = "a corgi runs along the beach at sunset"

CRITIQUE_EXAMPLE: dict[str, Any] = {
    "dimensions": [
        {
            "name": "semantic_consistency",
            "label": "unassessed",
            "score": None,
            "probabilities": None,
            "reasons": ["the signal backend cannot read the prompt; use a vlm backend"],
            "issues": [],
        },
        {
            "name": "motion_smoothness",
            "label": "good",
            "score": 0.913,
            "probabilities": {"good": 0.851, "normal": 0.124, "bad": 0.025},
            "reasons": ["motion is steady: no frame-to-frame jumps above the threshold"],
            "issues": [],
        },
        {
            "name": "video_fidelity",
            "label": "normal",
            "score": 0.552,
            "probabilities": {"good": 0.301, "normal": 0.502, "bad": 0.197},
            "reasons": ["two short stretches are blurred"],
            "issues": [{"tag": "blur", "start_s": 1.2, "end_s": 1.6, "severity": 0.41}],
        },
    ],
    "reward": 0.58655,
    "model": {"backend": "signal", "name": "lift-signal", "version": "0.1.0"},
    "video": {
        "frames": 49,
        "fps": 8.0,
        "duration_s": 6.125,
        "width": 720,
        "height": 480,
        "frames_analysed": 49,
        "container": "mp4",
        "codec": "h264",
        "fps_analysed": 8.0,
    },
    "dynamic_degree": 0.3125,
    "prompt": _PROMPT,
}


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests


class VideoJSON(_Wire):
    """A video in a JSON body: a URI or base64 bytes (exactly one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {"prompt": _PROMPT, "video_uri": "file:///videos/corgi.mp4"},
            {"prompt": _PROMPT, "video_b64": "AAAAIGZ0eXBpc29t..."},
        ),
    )

    prompt: str = Field(..., description="The text the video was generated from.")
    video_uri: str | None = Field(
        None,
        description="file:// (under the server's video root) or http(s):// (allow-listed hosts).",
    )
    video_b64: str | None = Field(None, description="The encoded video file, base64.")

    def source(self) -> VideoSource:
        """The engine's view of the video."""
        return _source(self.video_uri, self.video_b64)


def _source(video_uri: str | None, video_b64: str | None) -> VideoSource:
    if (video_uri is None) == (video_b64 is None):
        raise InvalidInput("set exactly one of video_uri or video_b64")
    if video_b64 is not None:
        try:
            data = base64.b64decode(video_b64, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("video_b64 is not valid base64") from None
        return VideoSource(data=data)
    return VideoSource(uri=video_uri)


class VideoRefJSON(_Wire):
    """One video of a comparison: a URI or base64 bytes (exactly one)."""

    video_uri: str | None = Field(
        None,
        description="file:// (under the server's video root) or http(s):// (allow-listed hosts).",
    )
    video_b64: str | None = Field(None, description="The encoded video file, base64.")

    def source(self) -> VideoSource:
        """The engine's view of the video."""
        return _source(self.video_uri, self.video_b64)


class CompareJSON(_Wire):
    """Body of POST /v1/comparisons as JSON: one prompt, two videos."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {
                "prompt": _PROMPT,
                "a": {"video_uri": "file:///videos/a.mp4"},
                "b": {"video_b64": "AAAAIGZ0eXBpc29t..."},
            }
        ),
    )

    prompt: str = Field(..., description="The text both videos were generated from.")
    a: VideoRefJSON = Field(..., description="The first video.")
    b: VideoRefJSON = Field(..., description="The second video.")


class CompareForm(_Wire):
    """``POST /v1/comparisons`` as multipart/form-data: two files and their prompt."""

    video_a: bytes = Field(..., description="The first video file (MP4, WebM, ...).")
    video_b: bytes = Field(..., description="The second video file.")
    prompt: str = Field(..., description="The text both videos were generated from.")


class CritiqueForm(_Wire):
    """``POST /v1/critiques`` as multipart/form-data: the file and its prompt."""

    video: bytes = Field(..., description="The video file (MP4, WebM, ...).")
    prompt: str = Field(..., description="The text the video was generated from.")


class ScoreJSON(_Wire):
    """Body of POST /v1/scores."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {
                "items": [
                    {"prompt": _PROMPT, "video_uri": "file:///videos/a.mp4"},
                    {"prompt": "a red car turns left", "video_uri": "file:///videos/b.mp4"},
                ]
            }
        ),
    )

    items: list[VideoJSON] = Field(..., description="Videos and prompts to score.")


# ---------------------------------------------------------------- responses


class ProbabilitiesJSON(_Wire):
    """The critic's probabilities of the three labels, each in [0, 1]; they sum to 1."""

    good: float
    normal: float
    bad: float


class IssueJSON(_Wire):
    """A defect and the span of the video where it happens."""

    tag: str = Field(..., description="What kind of defect, e.g. blur, flicker, jump.")
    start_s: float = Field(..., description="Where it starts, seconds.")
    end_s: float = Field(..., description="Where it ends, seconds.")
    severity: float = Field(..., description="0 (barely visible) to 1 (ruins the clip).")


class DimensionJSON(_Wire):
    """The verdict on one dimension."""

    name: Dimension
    label: Label
    score: float | None = Field(
        ..., description="In [0, 1]: p(good) + p(normal)/2; null when unassessed."
    )
    probabilities: ProbabilitiesJSON | None = Field(..., description="Null when unassessed.")
    reasons: list[str] = Field(..., description="Sentences explaining the label.")
    issues: list[IssueJSON] = Field(..., description="Time-stamped defects.")


class ModelJSON(_Wire):
    """Which backend and model judged."""

    backend: str = Field(..., examples=["signal"])
    name: str
    version: str


class VideoInfoJSON(_Wire):
    """What the decoder found in the video."""

    frames: int
    fps: float
    duration_s: float
    width: int
    height: int
    frames_analysed: int = Field(..., description="Frames the backend looked at.")
    container: str = Field(..., description="The container format, e.g. mp4.")
    codec: str = Field(..., description="The video codec, e.g. h264.")
    fps_analysed: float = Field(
        ..., description="Rate of the analysed frames (1 / their mean gap); 0 for one frame."
    )


class CritiqueJSON(_Wire):
    """A critique of one video: per-dimension verdicts and the reward of paper Eq. 2."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(CRITIQUE_EXAMPLE))

    dimensions: list[DimensionJSON]
    reward: float | None = Field(
        ...,
        description="Mean expected reward over the judged dimensions; null when none was judged.",
    )
    model: ModelJSON
    video: VideoInfoJSON
    dynamic_degree: float | None = Field(
        ..., description="How much the video moves (0 still); null when not measured."
    )
    prompt: str

    @classmethod
    def of(cls, critique: Critique) -> CritiqueJSON:
        """The wire form of ``critique`` (from the one JSON writer, lift.critique.to_json)."""
        return cls.model_validate(to_json(critique))


class ScoredJSON(_Wire):
    """An item of a batch that was judged (reasons and issues left out)."""

    critique: CritiqueJSON


class ScoresJSON(_Wire):
    """Response of POST /v1/scores: one result per item, in order; items fail separately."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {
                "results": [
                    {"critique": CRITIQUE_EXAMPLE},
                    {
                        "error": {
                            "code": "INVALID_ARGUMENT",
                            "message": "the video could not be decoded: no video stream",
                        }
                    },
                ]
            }
        ),
    )

    results: list[ScoredJSON | ErrorResponse] = Field(
        ..., description="Each item's critique, or the error that item alone hit."
    )


_PROB_A = "Probability that video a is better; null when either video is unassessed here."
_PROB_B = "Probability that video b is better; null like prob_a."
_PROB_TIE = "Probability that neither is better; null like prob_a, or when the method has no tie."


class PreferenceJSON(_Wire):
    """How likely a, b, or neither is better; the three sum to 1."""

    prob_a: float | None = Field(..., description=_PROB_A)
    prob_b: float | None = Field(..., description=_PROB_B)
    prob_tie: float | None = Field(..., description=_PROB_TIE)


class DimensionPreferenceJSON(PreferenceJSON):
    """The preference on one dimension."""

    name: Dimension


class ComparedVideosJSON(_Wire):
    """What the decoder found in each video, and the frames the backend used."""

    a: VideoInfoJSON
    b: VideoInfoJSON


COMPARISON_EXAMPLE: dict[str, Any] = {
    "dimensions": [
        {"name": "semantic_consistency", "prob_a": None, "prob_b": None, "prob_tie": None},
        {"name": "motion_smoothness", "prob_a": 0.81, "prob_b": 0.02, "prob_tie": 0.17},
        {"name": "video_fidelity", "prob_a": 0.3, "prob_b": 0.3, "prob_tie": 0.4},
    ],
    "overall": {"prob_a": 0.64, "prob_b": 0.08, "prob_tie": 0.28},
    "method": "bradley_terry_expected_reward",
    "model": CRITIQUE_EXAMPLE["model"],
    "videos": {"a": CRITIQUE_EXAMPLE["video"], "b": CRITIQUE_EXAMPLE["video"]},
    "prompt": _PROMPT,
}


class ComparisonJSON(_Wire):
    """Response of POST /v1/comparisons: which video is better, per dimension and overall."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(COMPARISON_EXAMPLE))

    dimensions: list[DimensionPreferenceJSON]
    overall: PreferenceJSON = Field(
        ..., description="The preference on the reward over the dimensions both have assessed."
    )
    method: str = Field(
        ...,
        description="How the probabilities came about: bradley_terry_expected_reward (label "
        "critics, the signal critic), bradley_terry_scores, or native (the model judged the pair).",
    )
    model: ModelJSON
    videos: ComparedVideosJSON
    prompt: str

    @classmethod
    def of(cls, comparison: Comparison) -> ComparisonJSON:
        """The wire form of ``comparison`` (from lift.critique.comparison_to_json)."""
        return cls.model_validate(comparison_to_json(comparison))


class RewardMapJSON(_Wire):
    """Reward per label (paper Eq. 2)."""

    good: float
    normal: float
    bad: float


class CriticLimitsJSON(_Wire):
    """The largest input the critic takes."""

    max_video_bytes: int
    max_duration_s: float
    max_frames: int
    max_side_px: int
    max_prompt_chars: int
    max_batch_items: int


class FrameSamplingJSON(_Wire):
    """How the critic picks the frames it looks at."""

    frames: int = Field(..., description="Most frames the backend looks at per video.")
    mode: str = Field(
        ..., description="time (evenly in presentation time) or index (evenly over frames)."
    )


class CriticInfoJSON(_Wire):
    """Response of GET /v1/info."""

    model: ModelJSON = Field(
        ..., description="Backend and model; name and version are the scorer's (drift check)."
    )
    assessed_dimensions: list[Dimension] = Field(
        ..., description="The dimensions this backend judges (others come back unassessed)."
    )
    reward_map: RewardMapJSON
    limits: CriticLimitsJSON
    suite_version: str
    protocol: str = Field(..., description="How the model's outputs become a critique: labels, ...")
    score_semantics: str = Field(
        ..., description="What scores and reward mean, e.g. lift_labels_expected_reward_0_1."
    )
    frame_sampling: FrameSamplingJSON

    @classmethod
    def of(cls, info: CriticInfo) -> CriticInfoJSON:
        """The wire form of the engine's info."""
        s, m, r = info.settings, info.model, info.reward_map
        return cls(
            model=ModelJSON(backend=m.backend, name=m.name, version=m.version),
            assessed_dimensions=list(info.assessed),
            reward_map=RewardMapJSON(good=r.good, normal=r.normal, bad=r.bad),
            limits=CriticLimitsJSON(
                max_video_bytes=s.max_video_bytes,
                max_duration_s=s.max_duration_s,
                max_frames=s.max_frames,
                max_side_px=s.max_side_px,
                max_prompt_chars=s.max_prompt_chars,
                max_batch_items=s.max_batch_items,
            ),
            suite_version=info.suite_version,
            protocol=info.protocol,
            score_semantics=info.score_semantics,
            frame_sampling=FrameSamplingJSON(frames=info.sampling_frames, mode=info.sampling_mode),
        )
