import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from lift.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Critique(_message.Message):
    __slots__ = ("dimensions", "reward", "model", "video", "dynamic_degree", "prompt")
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_DEGREE_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    dimensions: _containers.RepeatedCompositeFieldContainer[_common_pb2.DimensionVerdict]
    reward: float
    model: _common_pb2.ModelInfo
    video: _common_pb2.VideoInfo
    dynamic_degree: float
    prompt: str
    def __init__(self, dimensions: _Optional[_Iterable[_Union[_common_pb2.DimensionVerdict, _Mapping]]] = ..., reward: _Optional[float] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., video: _Optional[_Union[_common_pb2.VideoInfo, _Mapping]] = ..., dynamic_degree: _Optional[float] = ..., prompt: _Optional[str] = ...) -> None: ...

class CritiqueRequest(_message.Message):
    __slots__ = ("video", "prompt")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.VideoSource
    prompt: str
    def __init__(self, video: _Optional[_Union[_common_pb2.VideoSource, _Mapping]] = ..., prompt: _Optional[str] = ...) -> None: ...

class CritiqueResponse(_message.Message):
    __slots__ = ("critique",)
    CRITIQUE_FIELD_NUMBER: _ClassVar[int]
    critique: Critique
    def __init__(self, critique: _Optional[_Union[Critique, _Mapping]] = ...) -> None: ...

class CritiqueUploadHeader(_message.Message):
    __slots__ = ("prompt", "total_bytes")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    total_bytes: int
    def __init__(self, prompt: _Optional[str] = ..., total_bytes: _Optional[int] = ...) -> None: ...

class CritiqueUploadRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: CritiqueUploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[CritiqueUploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class CritiqueUploadResponse(_message.Message):
    __slots__ = ("critique",)
    CRITIQUE_FIELD_NUMBER: _ClassVar[int]
    critique: Critique
    def __init__(self, critique: _Optional[_Union[Critique, _Mapping]] = ...) -> None: ...

class ScoreItem(_message.Message):
    __slots__ = ("video", "prompt")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    video: _common_pb2.VideoSource
    prompt: str
    def __init__(self, video: _Optional[_Union[_common_pb2.VideoSource, _Mapping]] = ..., prompt: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScoreItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ScoreItem, _Mapping]]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ScoreResult(_message.Message):
    __slots__ = ("critique", "error")
    CRITIQUE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    critique: Critique
    error: ItemError
    def __init__(self, critique: _Optional[_Union[Critique, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoreResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ScoreResult, _Mapping]]] = ...) -> None: ...

class GetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetInfoResponse(_message.Message):
    __slots__ = ("model", "assessed_dimensions", "reward_map", "max_video_bytes", "max_duration", "max_frames", "max_side_px", "max_prompt_chars", "max_batch_items", "suite_version", "protocol", "score_semantics", "frame_sampling")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ASSESSED_DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    REWARD_MAP_FIELD_NUMBER: _ClassVar[int]
    MAX_VIDEO_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DURATION_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_SIDE_PX_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_CHARS_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_ITEMS_FIELD_NUMBER: _ClassVar[int]
    SUITE_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    SCORE_SEMANTICS_FIELD_NUMBER: _ClassVar[int]
    FRAME_SAMPLING_FIELD_NUMBER: _ClassVar[int]
    model: _common_pb2.ModelInfo
    assessed_dimensions: _containers.RepeatedScalarFieldContainer[_common_pb2.Dimension]
    reward_map: _common_pb2.LabelProbabilities
    max_video_bytes: int
    max_duration: _duration_pb2.Duration
    max_frames: int
    max_side_px: int
    max_prompt_chars: int
    max_batch_items: int
    suite_version: str
    protocol: str
    score_semantics: str
    frame_sampling: FrameSampling
    def __init__(self, model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., assessed_dimensions: _Optional[_Iterable[_Union[_common_pb2.Dimension, str]]] = ..., reward_map: _Optional[_Union[_common_pb2.LabelProbabilities, _Mapping]] = ..., max_video_bytes: _Optional[int] = ..., max_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_frames: _Optional[int] = ..., max_side_px: _Optional[int] = ..., max_prompt_chars: _Optional[int] = ..., max_batch_items: _Optional[int] = ..., suite_version: _Optional[str] = ..., protocol: _Optional[str] = ..., score_semantics: _Optional[str] = ..., frame_sampling: _Optional[_Union[FrameSampling, _Mapping]] = ...) -> None: ...

class FrameSampling(_message.Message):
    __slots__ = ("frames", "mode")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    frames: int
    mode: str
    def __init__(self, frames: _Optional[int] = ..., mode: _Optional[str] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("prompt", "a", "b")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    A_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    a: _common_pb2.VideoSource
    b: _common_pb2.VideoSource
    def __init__(self, prompt: _Optional[str] = ..., a: _Optional[_Union[_common_pb2.VideoSource, _Mapping]] = ..., b: _Optional[_Union[_common_pb2.VideoSource, _Mapping]] = ...) -> None: ...

class Preference(_message.Message):
    __slots__ = ("prob_a", "prob_b", "prob_tie")
    PROB_A_FIELD_NUMBER: _ClassVar[int]
    PROB_B_FIELD_NUMBER: _ClassVar[int]
    PROB_TIE_FIELD_NUMBER: _ClassVar[int]
    prob_a: float
    prob_b: float
    prob_tie: float
    def __init__(self, prob_a: _Optional[float] = ..., prob_b: _Optional[float] = ..., prob_tie: _Optional[float] = ...) -> None: ...

class DimensionPreference(_message.Message):
    __slots__ = ("name", "prob_a", "prob_b", "prob_tie")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROB_A_FIELD_NUMBER: _ClassVar[int]
    PROB_B_FIELD_NUMBER: _ClassVar[int]
    PROB_TIE_FIELD_NUMBER: _ClassVar[int]
    name: _common_pb2.Dimension
    prob_a: float
    prob_b: float
    prob_tie: float
    def __init__(self, name: _Optional[_Union[_common_pb2.Dimension, str]] = ..., prob_a: _Optional[float] = ..., prob_b: _Optional[float] = ..., prob_tie: _Optional[float] = ...) -> None: ...

class Comparison(_message.Message):
    __slots__ = ("dimensions", "overall", "method", "model", "video_a", "video_b", "prompt")
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    OVERALL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VIDEO_A_FIELD_NUMBER: _ClassVar[int]
    VIDEO_B_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    dimensions: _containers.RepeatedCompositeFieldContainer[DimensionPreference]
    overall: Preference
    method: str
    model: _common_pb2.ModelInfo
    video_a: _common_pb2.VideoInfo
    video_b: _common_pb2.VideoInfo
    prompt: str
    def __init__(self, dimensions: _Optional[_Iterable[_Union[DimensionPreference, _Mapping]]] = ..., overall: _Optional[_Union[Preference, _Mapping]] = ..., method: _Optional[str] = ..., model: _Optional[_Union[_common_pb2.ModelInfo, _Mapping]] = ..., video_a: _Optional[_Union[_common_pb2.VideoInfo, _Mapping]] = ..., video_b: _Optional[_Union[_common_pb2.VideoInfo, _Mapping]] = ..., prompt: _Optional[str] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("comparison",)
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    comparison: Comparison
    def __init__(self, comparison: _Optional[_Union[Comparison, _Mapping]] = ...) -> None: ...
