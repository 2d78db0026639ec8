import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Dimension(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIMENSION_UNSPECIFIED: _ClassVar[Dimension]
    DIMENSION_SEMANTIC_CONSISTENCY: _ClassVar[Dimension]
    DIMENSION_MOTION_SMOOTHNESS: _ClassVar[Dimension]
    DIMENSION_VIDEO_FIDELITY: _ClassVar[Dimension]

class Label(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LABEL_UNSPECIFIED: _ClassVar[Label]
    LABEL_GOOD: _ClassVar[Label]
    LABEL_NORMAL: _ClassVar[Label]
    LABEL_BAD: _ClassVar[Label]
    LABEL_UNASSESSED: _ClassVar[Label]
DIMENSION_UNSPECIFIED: Dimension
DIMENSION_SEMANTIC_CONSISTENCY: Dimension
DIMENSION_MOTION_SMOOTHNESS: Dimension
DIMENSION_VIDEO_FIDELITY: Dimension
LABEL_UNSPECIFIED: Label
LABEL_GOOD: Label
LABEL_NORMAL: Label
LABEL_BAD: Label
LABEL_UNASSESSED: Label

class VideoSource(_message.Message):
    __slots__ = ("data", "uri")
    DATA_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    uri: str
    def __init__(self, data: _Optional[bytes] = ..., uri: _Optional[str] = ...) -> None: ...

class LabelProbabilities(_message.Message):
    __slots__ = ("good", "normal", "bad")
    GOOD_FIELD_NUMBER: _ClassVar[int]
    NORMAL_FIELD_NUMBER: _ClassVar[int]
    BAD_FIELD_NUMBER: _ClassVar[int]
    good: float
    normal: float
    bad: float
    def __init__(self, good: _Optional[float] = ..., normal: _Optional[float] = ..., bad: _Optional[float] = ...) -> None: ...

class Issue(_message.Message):
    __slots__ = ("tag", "start", "end", "severity")
    TAG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    tag: str
    start: _duration_pb2.Duration
    end: _duration_pb2.Duration
    severity: float
    def __init__(self, tag: _Optional[str] = ..., start: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., end: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., severity: _Optional[float] = ...) -> None: ...

class DimensionVerdict(_message.Message):
    __slots__ = ("name", "label", "score", "probabilities", "reasons", "issues")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    ISSUES_FIELD_NUMBER: _ClassVar[int]
    name: Dimension
    label: Label
    score: float
    probabilities: LabelProbabilities
    reasons: _containers.RepeatedScalarFieldContainer[str]
    issues: _containers.RepeatedCompositeFieldContainer[Issue]
    def __init__(self, name: _Optional[_Union[Dimension, str]] = ..., label: _Optional[_Union[Label, str]] = ..., score: _Optional[float] = ..., probabilities: _Optional[_Union[LabelProbabilities, _Mapping]] = ..., reasons: _Optional[_Iterable[str]] = ..., issues: _Optional[_Iterable[_Union[Issue, _Mapping]]] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("backend", "name", "version")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    backend: str
    name: str
    version: str
    def __init__(self, backend: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class VideoInfo(_message.Message):
    __slots__ = ("frames", "fps", "duration", "width", "height", "frames_analysed", "container", "codec", "fps_analysed")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_ANALYSED_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    FPS_ANALYSED_FIELD_NUMBER: _ClassVar[int]
    frames: int
    fps: float
    duration: _duration_pb2.Duration
    width: int
    height: int
    frames_analysed: int
    container: str
    codec: str
    fps_analysed: float
    def __init__(self, frames: _Optional[int] = ..., fps: _Optional[float] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., frames_analysed: _Optional[int] = ..., container: _Optional[str] = ..., codec: _Optional[str] = ..., fps_analysed: _Optional[float] = ...) -> None: ...
