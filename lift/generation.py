"""A generation request, its progress and its result, and their wire forms in one place.

The generator's engine, its gRPC and HTTP fronts, the client and the CLI all use
these dataclasses; protobuf and JSON appear only in the ``to_*`` / ``from_*``
functions below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from lift.generator.v1 import generator_pb2
from lift.wire import duration, seconds

BASE_VERSION = "base"
"""Adapter version of the model without any adapter."""
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
DIFFUSERS_WEIGHTS_FILE = "pytorch_lora_weights.safetensors"
"""What diffusers' ``load_lora_weights(dir)`` reads (keys ``transformer.<module>.lora_A.weight``)."""


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate; ``None`` fields take the pipeline's defaults."""

    prompt: str
    negative_prompt: str = ""
    seed: int | None = None
    num_frames: int | None = None
    height: int | None = None
    width: int | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    fps: float | None = None
    adapter_version: str = ""
    """Empty: the default (promoted) adapter; "base": none; otherwise a loaded version label."""


class Stage(StrEnum):
    """Where a generation is."""

    STARTED = "started"
    DENOISING = "denoising"
    DECODING = "decoding"
    ENCODING = "encoding"


@dataclass(frozen=True)
class Progress:
    """One progress event of a generation."""

    stage: Stage
    step: int
    total_steps: int
    elapsed_s: float
    adapter_version: str


@dataclass(frozen=True)
class Timings:
    """Milliseconds per stage."""

    queue_ms: float = 0.0
    denoise_ms: float = 0.0
    decode_ms: float = 0.0
    encode_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True)
class GenerationMetadata:
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
    adapter_version: str
    model_version: str
    timings: Timings = field(default_factory=Timings)


@dataclass(frozen=True)
class GeneratedVideo:
    """An encoded video and its metadata."""

    data: bytes
    mime_type: str
    metadata: GenerationMetadata


@dataclass(frozen=True)
class AdapterFiles:
    """A LoRA adapter as peft writes it: the safetensors bytes and, optionally, the config."""

    weights: bytes
    config_json: str | None = None

    @classmethod
    def from_dir(cls, directory: Path) -> AdapterFiles:
        """Read peft's files from a local directory."""
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"no {WEIGHTS_FILE} in {directory}")
        config = directory / CONFIG_FILE
        text = config.read_text(encoding="utf-8") if config.is_file() else None
        return cls(weights.read_bytes(), text)


# -- protobuf ------------------------------------------------------------------

_STAGE_TO_PROTO = {
    Stage.STARTED: generator_pb2.GENERATE_STAGE_STARTED,
    Stage.DENOISING: generator_pb2.GENERATE_STAGE_DENOISING,
    Stage.DECODING: generator_pb2.GENERATE_STAGE_DECODING,
    Stage.ENCODING: generator_pb2.GENERATE_STAGE_ENCODING,
}
_STAGE_FROM_PROTO = {v: k for k, v in _STAGE_TO_PROTO.items()}
# GenerationTimings' Durations; the dataclass (and the HTTP JSON) keep "<stage>_ms" floats.
_STAGES = ("queue", "denoise", "decode", "encode", "total")
_OPTIONAL = (
    "seed",
    "num_frames",
    "height",
    "width",
    "num_inference_steps",
    "guidance_scale",
    "fps",
)


def request_to_proto(r: GenerationRequest) -> generator_pb2.GenerateRequest:
    """The gRPC request for ``r``."""
    msg = generator_pb2.GenerateRequest(
        prompt=r.prompt, negative_prompt=r.negative_prompt, adapter_version=r.adapter_version
    )
    for name in _OPTIONAL:
        value = getattr(r, name)
        if value is not None:
            setattr(msg, name, value)
    return msg


def request_from_proto(msg: generator_pb2.GenerateRequest) -> GenerationRequest:
    """The engine's request from a gRPC one (unset optional fields stay None)."""
    optional = {name: getattr(msg, name) if msg.HasField(name) else None for name in _OPTIONAL}
    return GenerationRequest(
        prompt=msg.prompt,
        negative_prompt=msg.negative_prompt,
        adapter_version=msg.adapter_version,
        **optional,
    )


def progress_to_proto(p: Progress) -> generator_pb2.GenerateProgress:
    """A progress event as a message."""
    return generator_pb2.GenerateProgress(
        stage=_STAGE_TO_PROTO[p.stage],
        step=p.step,
        total_steps=p.total_steps,
        elapsed=duration(p.elapsed_s),
        adapter_version=p.adapter_version,
    )


def progress_from_proto(msg: generator_pb2.GenerateProgress) -> Progress:
    """A progress event from a message."""
    return Progress(
        stage=_STAGE_FROM_PROTO[msg.stage],
        step=msg.step,
        total_steps=msg.total_steps,
        elapsed_s=seconds(msg.elapsed),
        adapter_version=msg.adapter_version,
    )


def metadata_to_proto(m: GenerationMetadata) -> generator_pb2.GenerationMetadata:
    """Metadata as a message."""
    fields = metadata_to_json(m)
    t = fields.pop("timings")
    timings = generator_pb2.GenerationTimings(
        **{stage: duration(t[f"{stage}_ms"] / 1000) for stage in _STAGES}
    )
    return generator_pb2.GenerationMetadata(timings=timings, **fields)


def metadata_from_proto(msg: generator_pb2.GenerationMetadata) -> GenerationMetadata:
    """Metadata from a message."""
    t = msg.timings
    return GenerationMetadata(
        prompt=msg.prompt,
        negative_prompt=msg.negative_prompt,
        seed=msg.seed,
        num_frames=msg.num_frames,
        height=msg.height,
        width=msg.width,
        num_inference_steps=msg.num_inference_steps,
        guidance_scale=msg.guidance_scale,
        fps=msg.fps,
        adapter_version=msg.adapter_version,
        model_version=msg.model_version,
        timings=Timings(**{f"{s}_ms": seconds(getattr(t, s)) * 1000 for s in _STAGES}),
    )


def video_to_proto(v: GeneratedVideo) -> generator_pb2.GeneratedVideo:
    """A finished video as a message."""
    return generator_pb2.GeneratedVideo(
        data=v.data, mime_type=v.mime_type, metadata=metadata_to_proto(v.metadata)
    )


def video_from_proto(msg: generator_pb2.GeneratedVideo) -> GeneratedVideo:
    """A finished video from a message."""
    return GeneratedVideo(msg.data, msg.mime_type, metadata_from_proto(msg.metadata))


# -- JSON ----------------------------------------------------------------------


def metadata_to_json(m: GenerationMetadata) -> dict[str, Any]:
    """Metadata as a JSON object (field names as in the proto)."""
    return asdict(m)


def metadata_from_json(d: dict[str, Any]) -> GenerationMetadata:
    """Metadata from its JSON object."""
    d = dict(d)
    return GenerationMetadata(timings=Timings(**d.pop("timings")), **d)
