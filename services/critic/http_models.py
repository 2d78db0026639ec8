"""Wire models of the critic's HTTP API (pydantic), converted at the edge only.

Requests: :class:`VideoJSON` (JSON) or :class:`CritiqueForm` (multipart) for
``POST /v1/critiques``, :class:`ScoreJSON` for ``POST /v1/scores``. Responses:
:class:`CritiqueJSON`, :class:`ScoresJSON`, :class:`CriticInfoJSON`. A critique's JSON
is written once, by :func:`lift.critique.to_json`; :meth:`CritiqueJSON.of` validates
that dict, so the model documents and checks the contract without restating it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lift.critique import Critique, Dimension, Label, to_json
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
        if (self.video_uri is None) == (self.video_b64 is None):
            raise InvalidInput("set exactly one of video_uri or video_b64")
        if self.video_b64 is not None:
            try:
                data = base64.b64decode(self.video_b64, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidInput("video_b64 is not valid base64") from None
            return VideoSource(data=data)
        return VideoSource(uri=self.video_uri)


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


class CriticInfoJSON(_Wire):
    """Response of GET /v1/info."""

    model: ModelJSON
    assessed_dimensions: list[Dimension] = Field(
        ..., description="The dimensions this backend judges (others come back unassessed)."
    )
    reward_map: RewardMapJSON
    limits: CriticLimitsJSON
    suite_version: str

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
        )
