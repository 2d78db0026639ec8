import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GenerateStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATE_STAGE_UNSPECIFIED: _ClassVar[GenerateStage]
    GENERATE_STAGE_STARTED: _ClassVar[GenerateStage]
    GENERATE_STAGE_DENOISING: _ClassVar[GenerateStage]
    GENERATE_STAGE_DECODING: _ClassVar[GenerateStage]
    GENERATE_STAGE_ENCODING: _ClassVar[GenerateStage]
GENERATE_STAGE_UNSPECIFIED: GenerateStage
GENERATE_STAGE_STARTED: GenerateStage
GENERATE_STAGE_DENOISING: GenerateStage
GENERATE_STAGE_DECODING: GenerateStage
GENERATE_STAGE_ENCODING: GenerateStage

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "negative_prompt", "seed", "num_frames", "height", "width", "num_inference_steps", "guidance_scale", "fps", "adapter_version")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., seed: _Optional[int] = ..., num_frames: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., num_inference_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., fps: _Optional[float] = ..., adapter_version: _Optional[str] = ...) -> None: ...

class GenerateProgress(_message.Message):
    __slots__ = ("stage", "step", "total_steps", "elapsed", "adapter_version")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    stage: GenerateStage
    step: int
    total_steps: int
    elapsed: _duration_pb2.Duration
    adapter_version: str
    def __init__(self, stage: _Optional[_Union[GenerateStage, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., elapsed: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., adapter_version: _Optional[str] = ...) -> None: ...

class GenerationTimings(_message.Message):
    __slots__ = ("queue", "denoise", "decode", "encode", "total")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DENOISE_FIELD_NUMBER: _ClassVar[int]
    DECODE_FIELD_NUMBER: _ClassVar[int]
    ENCODE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    queue: _duration_pb2.Duration
    denoise: _duration_pb2.Duration
    decode: _duration_pb2.Duration
    encode: _duration_pb2.Duration
    total: _duration_pb2.Duration
    def __init__(self, queue: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., denoise: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., decode: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., encode: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GenerationMetadata(_message.Message):
    __slots__ = ("prompt", "negative_prompt", "seed", "num_frames", "height", "width", "num_inference_steps", "guidance_scale", "fps", "adapter_version", "model_version", "timings")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
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
    timings: GenerationTimings
    def __init__(self, prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., seed: _Optional[int] = ..., num_frames: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., num_inference_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., fps: _Optional[float] = ..., adapter_version: _Optional[str] = ..., model_version: _Optional[str] = ..., timings: _Optional[_Union[GenerationTimings, _Mapping]] = ...) -> None: ...

class GeneratedVideo(_message.Message):
    __slots__ = ("data", "mime_type", "metadata")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    mime_type: str
    metadata: GenerationMetadata
    def __init__(self, data: _Optional[bytes] = ..., mime_type: _Optional[str] = ..., metadata: _Optional[_Union[GenerationMetadata, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("progress", "video")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    progress: GenerateProgress
    video: GeneratedVideo
    def __init__(self, progress: _Optional[_Union[GenerateProgress, _Mapping]] = ..., video: _Optional[_Union[GeneratedVideo, _Mapping]] = ...) -> None: ...

class AdapterFiles(_message.Message):
    __slots__ = ("weights", "config_json")
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    weights: bytes
    config_json: str
    def __init__(self, weights: _Optional[bytes] = ..., config_json: _Optional[str] = ...) -> None: ...

class LoadAdapterRequest(_message.Message):
    __slots__ = ("version", "uri", "files", "pin")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    version: str
    uri: str
    files: AdapterFiles
    pin: bool
    def __init__(self, version: _Optional[str] = ..., uri: _Optional[str] = ..., files: _Optional[_Union[AdapterFiles, _Mapping]] = ..., pin: _Optional[bool] = ...) -> None: ...

class LoadAdapterResponse(_message.Message):
    __slots__ = ("version", "previous_version", "modules", "rank", "load_duration", "loaded_versions", "pinned", "evicted_versions")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    LOAD_DURATION_FIELD_NUMBER: _ClassVar[int]
    LOADED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    EVICTED_VERSIONS_FIELD_NUMBER: _ClassVar[int]
    version: str
    previous_version: str
    modules: int
    rank: int
    load_duration: _duration_pb2.Duration
    loaded_versions: _containers.RepeatedScalarFieldContainer[str]
    pinned: bool
    evicted_versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, version: _Optional[str] = ..., previous_version: _Optional[str] = ..., modules: _Optional[int] = ..., rank: _Optional[int] = ..., load_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., loaded_versions: _Optional[_Iterable[str]] = ..., pinned: _Optional[bool] = ..., evicted_versions: _Optional[_Iterable[str]] = ...) -> None: ...

class PromoteAdapterRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class PromoteAdapterResponse(_message.Message):
    __slots__ = ("version", "previous_version")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    previous_version: str
    def __init__(self, version: _Optional[str] = ..., previous_version: _Optional[str] = ...) -> None: ...

class PinAdapterRequest(_message.Message):
    __slots__ = ("version", "pinned")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    version: str
    pinned: bool
    def __init__(self, version: _Optional[str] = ..., pinned: _Optional[bool] = ...) -> None: ...

class PinAdapterResponse(_message.Message):
    __slots__ = ("version", "pinned")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    version: str
    pinned: bool
    def __init__(self, version: _Optional[str] = ..., pinned: _Optional[bool] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GenerationDefaults(_message.Message):
    __slots__ = ("num_frames", "height", "width", "num_inference_steps", "guidance_scale", "fps")
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    num_frames: int
    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    fps: float
    def __init__(self, num_frames: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ..., num_inference_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., fps: _Optional[float] = ...) -> None: ...

class GenerationLimits(_message.Message):
    __slots__ = ("max_num_frames", "frames_multiple", "max_side_px", "size_multiple", "max_num_inference_steps", "max_guidance_scale", "max_prompt_chars", "max_adapter_bytes")
    MAX_NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_PX_FIELD_NUMBER: _ClassVar[int]
    SIZE_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    MAX_NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_ADAPTER_BYTES_FIELD_NUMBER: _ClassVar[int]
    max_num_frames: int
    frames_multiple: int
    max_side_px: int
    size_multiple: int
    max_num_inference_steps: int
    max_guidance_scale: float
    max_prompt_chars: int
    max_adapter_bytes: int
    def __init__(self, max_num_frames: _Optional[int] = ..., frames_multiple: _Optional[int] = ..., max_side_px: _Optional[int] = ..., size_multiple: _Optional[int] = ..., max_num_inference_steps: _Optional[int] = ..., max_guidance_scale: _Optional[float] = ..., max_prompt_chars: _Optional[int] = ..., max_adapter_bytes: _Optional[int] = ...) -> None: ...

class AdapterInfo(_message.Message):
    __slots__ = ("version", "modules", "rank", "load_time", "pinned")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    LOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    version: str
    modules: int
    rank: int
    load_time: _timestamp_pb2.Timestamp
    pinned: bool
    def __init__(self, version: _Optional[str] = ..., modules: _Optional[int] = ..., rank: _Optional[int] = ..., load_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pinned: _Optional[bool] = ...) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("model_name", "model_version", "pipeline", "demo", "device", "dtype", "current_adapter_version", "adapters", "defaults", "limits", "suite_version")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    DEMO_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    ADAPTERS_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SUITE_VERSION_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_version: str
    pipeline: str
    demo: bool
    device: str
    dtype: str
    current_adapter_version: str
    adapters: _containers.RepeatedCompositeFieldContainer[AdapterInfo]
    defaults: GenerationDefaults
    limits: GenerationLimits
    suite_version: str
    def __init__(self, model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., pipeline: _Optional[str] = ..., demo: _Optional[bool] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., current_adapter_version: _Optional[str] = ..., adapters: _Optional[_Iterable[_Union[AdapterInfo, _Mapping]]] = ..., defaults: _Optional[_Union[GenerationDefaults, _Mapping]] = ..., limits: _Optional[_Union[GenerationLimits, _Mapping]] = ..., suite_version: _Optional[str] = ...) -> None: ...
