"""Wire models of the generator's HTTP API (pydantic), converted at the edge only.

Requests: :class:`GenerationJSON` for ``POST /v1/generations``; :class:`AdapterJSON`
(JSON) or :class:`AdapterForm` (multipart) for ``POST /v1/adapters``. Responses:
:class:`GeneratedVideoJSON` (with ``Accept: application/json``), :class:`AdapterLoadJSON`,
:class:`GeneratorInfoJSON`. Each response model validates the dict the engine's
dataclass already writes (``metadata_to_json``, ``asdict``, ``GeneratorInfo.to_json``):
one writer per shape, checked and documented here.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lift.errors import InvalidInput
from lift.generation import AdapterFiles, GeneratedVideo, GenerationRequest, metadata_to_json
from lift.http import schema_examples
from lift.services.generator.engine import (
    AdapterLoad,
    AdapterPin,
    AdapterPromotion,
    GeneratorInfo,
)

_PROMPT = "a corgi runs along the beach at sunset"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- requests


class GenerationJSON(_Wire):
    """Body of POST /v1/generations; names follow diffusers' pipeline arguments."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {"prompt": _PROMPT, "seed": 7},
            {
                "prompt": _PROMPT,
                "negative_prompt": "blurry, distorted",
                "seed": 7,
                "num_frames": 49,
                "height": 480,
                "width": 720,
                "num_inference_steps": 50,
                "guidance_scale": 6.0,
                "fps": 8,
                "adapter_version": "run-7/step-200",
            },
        ),
    )

    prompt: str = Field(..., description="The text to generate a video of.")
    negative_prompt: str = Field("", description="What the video should not show.")
    seed: int | None = Field(None, description="Noise seed; unset picks one (reported back).")
    num_frames: int | None = Field(None, description="Frames; default from GET /v1/info.")
    height: int | None = Field(None, description="Frame height, pixels (even).")
    width: int | None = Field(None, description="Frame width, pixels (even).")
    num_inference_steps: int | None = Field(None, description="Denoising steps.")
    guidance_scale: float | None = Field(None, description="Classifier-free guidance scale.")
    fps: float | None = Field(None, description="Frame rate of the video file.")
    adapter_version: str = Field(
        "", description='Adapter version: "" = current, "base" = none, or a loaded label.'
    )

    def to_request(self) -> GenerationRequest:
        """The engine's request."""
        return GenerationRequest(**self.model_dump())


class AdapterJSON(_Wire):
    """Body of POST /v1/adapters as JSON: a file:// URI, or the files in base64."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {"version": "run-7/step-200", "uri": "file:///adapters/run-7/step-200"},
            {
                "version": "run-7/step-200",
                "weights_b64": "UklGRi4uLg==",
                "config": {"peft_type": "LORA", "r": 16, "lora_alpha": 16},
            },
        ),
    )

    version: str = Field(..., description="New version label, e.g. 'run-7/step-200'.")
    uri: str | None = Field(
        None, description="file:// URI of a peft adapter directory under the adapter root."
    )
    weights_b64: str | None = Field(None, description="peft's adapter_model.safetensors, base64.")
    config: dict[str, Any] | None = Field(
        None, description="peft's adapter_config.json (optional with weights_b64)."
    )
    pin: bool = Field(False, description="Never unload this version to make room.")

    def source(self) -> AdapterFiles | str:
        """The engine's view: files, or a URI."""
        if (self.uri is None) == (self.weights_b64 is None):
            raise InvalidInput("set exactly one of uri or weights_b64")
        if self.uri is not None:
            if self.config is not None:
                raise InvalidInput("config goes with weights_b64; a uri brings its own")
            return self.uri
        try:
            weights = base64.b64decode(self.weights_b64 or "", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("weights_b64 is not valid base64") from None
        return AdapterFiles(weights, json.dumps(self.config) if self.config is not None else None)


class AdapterForm(_Wire):
    """``POST /v1/adapters`` as multipart/form-data: peft's files and a version label."""

    version: str = Field(..., description="New version label, e.g. 'run-7/step-200'.")
    weights: bytes = Field(..., description="peft's adapter_model.safetensors.")
    config: bytes | None = Field(None, description="peft's adapter_config.json (optional).")
    pin: bool = Field(False, description="Never unload this version to make room.")

    def source(self) -> AdapterFiles:
        """The engine's view of the files."""
        config = None if self.config is None else self.config.decode("utf-8", errors="replace")
        return AdapterFiles(self.weights, config)


# ---------------------------------------------------------------- responses


class TimingsJSON(_Wire):
    """Milliseconds per stage of one generation."""

    queue_ms: float
    denoise_ms: float
    decode_ms: float
    encode_ms: float
    total_ms: float


class GenerationMetadataJSON(_Wire):
    """Everything needed to reproduce a video, and how long it took."""

    prompt: str
    negative_prompt: str
    seed: int
    num_frames: int
    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    fps: float
    adapter_version: str = Field(..., description='The version that made it ("base": none).')
    model_version: str
    timings: TimingsJSON


class GeneratedVideoJSON(_Wire):
    """Response of POST /v1/generations with ``Accept: application/json``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {
                "video_b64": "AAAAIGZ0eXBpc29t...",
                "mime_type": "video/mp4",
                "metadata": {
                    "prompt": _PROMPT,
                    "negative_prompt": "",
                    "seed": 7,
                    "num_frames": 49,
                    "height": 480,
                    "width": 720,
                    "num_inference_steps": 50,
                    "guidance_scale": 6.0,
                    "fps": 8.0,
                    "adapter_version": "base",
                    "model_version": "CogVideoX-2b@3f1c2a9e",
                    "timings": {
                        "queue_ms": 0.4,
                        "denoise_ms": 81234.5,
                        "decode_ms": 2310.2,
                        "encode_ms": 95.1,
                        "total_ms": 83640.2,
                    },
                },
            }
        ),
    )

    video_b64: str = Field(..., description="The encoded video file, base64.")
    mime_type: str = Field(..., examples=["video/mp4"])
    metadata: GenerationMetadataJSON

    @classmethod
    def of(cls, video: GeneratedVideo) -> GeneratedVideoJSON:
        """The wire form of a finished video."""
        return cls(
            video_b64=base64.b64encode(video.data).decode("ascii"),
            mime_type=video.mime_type,
            metadata=GenerationMetadataJSON.model_validate(metadata_to_json(video.metadata)),
        )


class AdapterLoadJSON(_Wire):
    """Response of POST /v1/adapters: the version installed (the default is unchanged)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {
                "version": "run-7/step-200",
                "previous_version": "run-7/step-100",
                "modules": 240,
                "rank": 16,
                "load_ms": 412.7,
                "loaded_versions": ["run-7/step-200", "run-7/step-100"],
                "pinned": False,
                "evicted_versions": [],
            }
        ),
    )

    version: str
    previous_version: str = Field(
        ..., description='The default version, which a load leaves as it was ("base": none).'
    )
    modules: int = Field(..., description="Modules the adapter changes.")
    rank: int = Field(..., description="LoRA rank.")
    load_ms: float
    loaded_versions: list[str] = Field(..., description="Every version held in memory.")
    pinned: bool = Field(..., description="Whether the new version is pinned.")
    evicted_versions: list[str] = Field(..., description="Unpinned versions unloaded to make room.")

    @classmethod
    def of(cls, load: AdapterLoad) -> AdapterLoadJSON:
        """The wire form of the engine's outcome."""
        return cls.model_validate(asdict(load))


class AdapterPromotionJSON(_Wire):
    """Response of POST /v1/adapters/{version}:promote."""

    version: str = Field(..., description="The default version now.")
    previous_version: str = Field(..., description="The default version before.")

    @classmethod
    def of(cls, promotion: AdapterPromotion) -> AdapterPromotionJSON:
        """The wire form of the engine's outcome."""
        return cls.model_validate(asdict(promotion))


class AdapterPinJSON(_Wire):
    """Response of POST /v1/adapters/{version}:pin and :unpin."""

    version: str
    pinned: bool = Field(..., description="Whether it is pinned now.")

    @classmethod
    def of(cls, pin: AdapterPin) -> AdapterPinJSON:
        """The wire form of the engine's outcome."""
        return cls.model_validate(asdict(pin))


class AdapterInfoJSON(_Wire):
    """An installed adapter."""

    version: str
    modules: int
    rank: int
    loaded_at: float = Field(..., description="When it was installed, Unix seconds.")
    pinned: bool = Field(
        ..., description="Never unloaded to make room (default, pinned, or in use)."
    )


class AdapterListJSON(_Wire):
    """Response of GET /v1/adapters."""

    default_version: str = Field(
        ..., description='What requests naming no version get ("base": no adapter).'
    )
    adapters: list[AdapterInfoJSON] = Field(..., description="Loaded versions, newest first.")

    @classmethod
    def of(cls, info: GeneratorInfo) -> AdapterListJSON:
        """The adapter part of the engine's info."""
        data = info.to_json()
        return cls.model_validate(
            {"default_version": data["current_adapter_version"], "adapters": data["adapters"]}
        )


class GeneratorDefaultsJSON(_Wire):
    """What a request that leaves a field unset gets."""

    num_frames: int
    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    fps: float


class GeneratorLimitsJSON(_Wire):
    """The largest request the generator takes, and the multiples sizes must be."""

    max_num_frames: int
    frames_multiple: int
    max_side_px: int
    size_multiple: int
    max_num_inference_steps: int
    max_guidance_scale: float
    max_prompt_chars: int
    max_adapter_bytes: int


class GeneratorInfoJSON(_Wire):
    """Response of GET /v1/info."""

    model_name: str
    model_version: str
    pipeline: str = Field(..., description="The diffusers pipeline class.")
    demo: bool = Field(..., description="True when serving the embedded tiny demo model.")
    device: str
    dtype: str
    current_adapter_version: str
    adapters: list[AdapterInfoJSON]
    defaults: GeneratorDefaultsJSON
    limits: GeneratorLimitsJSON
    suite_version: str

    @classmethod
    def of(cls, info: GeneratorInfo) -> GeneratorInfoJSON:
        """The wire form of the engine's info."""
        return cls.model_validate(info.to_json())
