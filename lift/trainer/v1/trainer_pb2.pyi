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

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_QUEUED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_QUEUED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState

class RewardMapConfig(_message.Message):
    __slots__ = ("good", "normal", "bad")
    GOOD_FIELD_NUMBER: _ClassVar[int]
    NORMAL_FIELD_NUMBER: _ClassVar[int]
    BAD_FIELD_NUMBER: _ClassVar[int]
    good: float
    normal: float
    bad: float
    def __init__(self, good: _Optional[float] = ..., normal: _Optional[float] = ..., bad: _Optional[float] = ...) -> None: ...

class RealDataConfig(_message.Message):
    __slots__ = ("path", "weight", "ratio")
    PATH_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    path: str
    weight: float
    ratio: float
    def __init__(self, path: _Optional[str] = ..., weight: _Optional[float] = ..., ratio: _Optional[float] = ...) -> None: ...

class LoraConfig(_message.Message):
    __slots__ = ("rank", "alpha", "target_modules", "full_finetune")
    RANK_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    TARGET_MODULES_FIELD_NUMBER: _ClassVar[int]
    FULL_FINETUNE_FIELD_NUMBER: _ClassVar[int]
    rank: int
    alpha: float
    target_modules: _containers.RepeatedScalarFieldContainer[str]
    full_finetune: bool
    def __init__(self, rank: _Optional[int] = ..., alpha: _Optional[float] = ..., target_modules: _Optional[_Iterable[str]] = ..., full_finetune: _Optional[bool] = ...) -> None: ...

class OptimizerConfig(_message.Message):
    __slots__ = ("lr", "betas", "weight_decay", "eps", "grad_clip", "warmup_steps")
    LR_FIELD_NUMBER: _ClassVar[int]
    BETAS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    EPS_FIELD_NUMBER: _ClassVar[int]
    GRAD_CLIP_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    lr: float
    betas: _containers.RepeatedScalarFieldContainer[float]
    weight_decay: float
    eps: float
    grad_clip: float
    warmup_steps: int
    def __init__(self, lr: _Optional[float] = ..., betas: _Optional[_Iterable[float]] = ..., weight_decay: _Optional[float] = ..., eps: _Optional[float] = ..., grad_clip: _Optional[float] = ..., warmup_steps: _Optional[int] = ...) -> None: ...

class SamplingConfig(_message.Message):
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

class EndpointConfig(_message.Message):
    __slots__ = ("address", "timeout_s", "retries", "backoff_s", "down_after_s", "addresses", "resolve", "resolve_every_s", "retry_down_after_s")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    BACKOFF_S_FIELD_NUMBER: _ClassVar[int]
    DOWN_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_FIELD_NUMBER: _ClassVar[int]
    RESOLVE_EVERY_S_FIELD_NUMBER: _ClassVar[int]
    RETRY_DOWN_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    address: str
    timeout_s: float
    retries: int
    backoff_s: float
    down_after_s: float
    addresses: _containers.RepeatedScalarFieldContainer[str]
    resolve: bool
    resolve_every_s: float
    retry_down_after_s: float
    def __init__(self, address: _Optional[str] = ..., timeout_s: _Optional[float] = ..., retries: _Optional[int] = ..., backoff_s: _Optional[float] = ..., down_after_s: _Optional[float] = ..., addresses: _Optional[_Iterable[str]] = ..., resolve: _Optional[bool] = ..., resolve_every_s: _Optional[float] = ..., retry_down_after_s: _Optional[float] = ...) -> None: ...

class EvalConfig(_message.Message):
    __slots__ = ("prompts", "seeds")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedScalarFieldContainer[str]
    seeds: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, prompts: _Optional[_Iterable[str]] = ..., seeds: _Optional[_Iterable[int]] = ...) -> None: ...

class GuardConfig(_message.Message):
    __slots__ = ("window", "max_drop", "min_reward_rise", "stop_on_warning")
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    MAX_DROP_FIELD_NUMBER: _ClassVar[int]
    MIN_REWARD_RISE_FIELD_NUMBER: _ClassVar[int]
    STOP_ON_WARNING_FIELD_NUMBER: _ClassVar[int]
    window: int
    max_drop: float
    min_reward_rise: float
    stop_on_warning: bool
    def __init__(self, window: _Optional[int] = ..., max_drop: _Optional[float] = ..., min_reward_rise: _Optional[float] = ..., stop_on_warning: _Optional[bool] = ...) -> None: ...

class OfflineDataConfig(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class RunConfig(_message.Message):
    __slots__ = ("name", "mode", "model", "generator", "critic", "prompts", "prompts_file", "strategy", "reward_map", "real_data", "offline_data", "lora", "optimizer", "sampling", "steps", "batch_size", "videos_per_prompt", "publish_every", "checkpoint_every", "seed", "mixed_precision", "device", "eval", "guards", "promote_on_success")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_FIELD_NUMBER: _ClassVar[int]
    CRITIC_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FILE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    REWARD_MAP_FIELD_NUMBER: _ClassVar[int]
    REAL_DATA_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_DATA_FIELD_NUMBER: _ClassVar[int]
    LORA_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    VIDEOS_PER_PROMPT_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_EVERY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MIXED_PRECISION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    EVAL_FIELD_NUMBER: _ClassVar[int]
    GUARDS_FIELD_NUMBER: _ClassVar[int]
    PROMOTE_ON_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    mode: str
    model: str
    generator: EndpointConfig
    critic: EndpointConfig
    prompts: _containers.RepeatedScalarFieldContainer[str]
    prompts_file: str
    strategy: str
    reward_map: RewardMapConfig
    real_data: RealDataConfig
    offline_data: OfflineDataConfig
    lora: LoraConfig
    optimizer: OptimizerConfig
    sampling: SamplingConfig
    steps: int
    batch_size: int
    videos_per_prompt: int
    publish_every: int
    checkpoint_every: int
    seed: int
    mixed_precision: str
    device: str
    eval: EvalConfig
    guards: GuardConfig
    promote_on_success: bool
    def __init__(self, name: _Optional[str] = ..., mode: _Optional[str] = ..., model: _Optional[str] = ..., generator: _Optional[_Union[EndpointConfig, _Mapping]] = ..., critic: _Optional[_Union[EndpointConfig, _Mapping]] = ..., prompts: _Optional[_Iterable[str]] = ..., prompts_file: _Optional[str] = ..., strategy: _Optional[str] = ..., reward_map: _Optional[_Union[RewardMapConfig, _Mapping]] = ..., real_data: _Optional[_Union[RealDataConfig, _Mapping]] = ..., offline_data: _Optional[_Union[OfflineDataConfig, _Mapping]] = ..., lora: _Optional[_Union[LoraConfig, _Mapping]] = ..., optimizer: _Optional[_Union[OptimizerConfig, _Mapping]] = ..., sampling: _Optional[_Union[SamplingConfig, _Mapping]] = ..., steps: _Optional[int] = ..., batch_size: _Optional[int] = ..., videos_per_prompt: _Optional[int] = ..., publish_every: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., seed: _Optional[int] = ..., mixed_precision: _Optional[str] = ..., device: _Optional[str] = ..., eval: _Optional[_Union[EvalConfig, _Mapping]] = ..., guards: _Optional[_Union[GuardConfig, _Mapping]] = ..., promote_on_success: _Optional[bool] = ...) -> None: ...

class GuardChange(_message.Message):
    __slots__ = ("before", "after")
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    before: float
    after: float
    def __init__(self, before: _Optional[float] = ..., after: _Optional[float] = ...) -> None: ...

class GuardComparison(_message.Message):
    __slots__ = ("dynamic_degree", "real_loss")
    DYNAMIC_DEGREE_FIELD_NUMBER: _ClassVar[int]
    REAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    dynamic_degree: GuardChange
    real_loss: GuardChange
    def __init__(self, dynamic_degree: _Optional[_Union[GuardChange, _Mapping]] = ..., real_loss: _Optional[_Union[GuardChange, _Mapping]] = ...) -> None: ...

class RunResult(_message.Message):
    __slots__ = ("steps", "adapter_dir", "adapter_version", "reward_before", "reward_after", "gain", "ci95", "ci95_before", "ci95_after", "significant", "n", "guards", "warnings")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_DIR_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARD_BEFORE_FIELD_NUMBER: _ClassVar[int]
    REWARD_AFTER_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    CI95_FIELD_NUMBER: _ClassVar[int]
    CI95_BEFORE_FIELD_NUMBER: _ClassVar[int]
    CI95_AFTER_FIELD_NUMBER: _ClassVar[int]
    SIGNIFICANT_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    GUARDS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    steps: int
    adapter_dir: str
    adapter_version: str
    reward_before: float
    reward_after: float
    gain: float
    ci95: float
    ci95_before: float
    ci95_after: float
    significant: bool
    n: int
    guards: GuardComparison
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, steps: _Optional[int] = ..., adapter_dir: _Optional[str] = ..., adapter_version: _Optional[str] = ..., reward_before: _Optional[float] = ..., reward_after: _Optional[float] = ..., gain: _Optional[float] = ..., ci95: _Optional[float] = ..., ci95_before: _Optional[float] = ..., ci95_after: _Optional[float] = ..., significant: _Optional[bool] = ..., n: _Optional[int] = ..., guards: _Optional[_Union[GuardComparison, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "name", "state", "step", "total_steps", "reason", "adapter_version", "create_time", "start_time", "finish_time", "resumes", "config", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    RESUMES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: RunState
    step: int
    total_steps: int
    reason: str
    adapter_version: str
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    resumes: int
    config: RunConfig
    result: RunResult
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., reason: _Optional[str] = ..., adapter_version: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resumes: _Optional[int] = ..., config: _Optional[_Union[RunConfig, _Mapping]] = ..., result: _Optional[_Union[RunResult, _Mapping]] = ...) -> None: ...

class StateChange(_message.Message):
    __slots__ = ("state", "reason")
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    reason: str
    def __init__(self, state: _Optional[_Union[RunState, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class LogNote(_message.Message):
    __slots__ = ("model_load",)
    MODEL_LOAD_FIELD_NUMBER: _ClassVar[int]
    model_load: _duration_pb2.Duration
    def __init__(self, model_load: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StepMetrics(_message.Message):
    __slots__ = ("step", "loss", "gen_loss", "real_loss", "reward", "reward_by_dimension", "dynamic_degree", "kept", "grad_norm", "lr", "clips", "real_clips", "duration", "samples_per_second")
    class RewardByDimensionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    GEN_LOSS_FIELD_NUMBER: _ClassVar[int]
    REAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    REWARD_BY_DIMENSION_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_DEGREE_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    LR_FIELD_NUMBER: _ClassVar[int]
    CLIPS_FIELD_NUMBER: _ClassVar[int]
    REAL_CLIPS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    step: int
    loss: float
    gen_loss: float
    real_loss: float
    reward: float
    reward_by_dimension: _containers.ScalarMap[str, float]
    dynamic_degree: float
    kept: float
    grad_norm: float
    lr: float
    clips: int
    real_clips: int
    duration: _duration_pb2.Duration
    samples_per_second: float
    def __init__(self, step: _Optional[int] = ..., loss: _Optional[float] = ..., gen_loss: _Optional[float] = ..., real_loss: _Optional[float] = ..., reward: _Optional[float] = ..., reward_by_dimension: _Optional[_Mapping[str, float]] = ..., dynamic_degree: _Optional[float] = ..., kept: _Optional[float] = ..., grad_norm: _Optional[float] = ..., lr: _Optional[float] = ..., clips: _Optional[int] = ..., real_clips: _Optional[int] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., samples_per_second: _Optional[float] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("phase", "version", "rewards", "dynamic_degree", "real_loss")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REWARDS_FIELD_NUMBER: _ClassVar[int]
    DYNAMIC_DEGREE_FIELD_NUMBER: _ClassVar[int]
    REAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    phase: str
    version: str
    rewards: _containers.RepeatedScalarFieldContainer[float]
    dynamic_degree: float
    real_loss: float
    def __init__(self, phase: _Optional[str] = ..., version: _Optional[str] = ..., rewards: _Optional[_Iterable[float]] = ..., dynamic_degree: _Optional[float] = ..., real_loss: _Optional[float] = ...) -> None: ...

class EvaluationProgress(_message.Message):
    __slots__ = ("done", "total", "phase")
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    done: int
    total: int
    phase: str
    def __init__(self, done: _Optional[int] = ..., total: _Optional[int] = ..., phase: _Optional[str] = ...) -> None: ...

class AdapterPublished(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class CheckpointWritten(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class Resumed(_message.Message):
    __slots__ = ("step",)
    STEP_FIELD_NUMBER: _ClassVar[int]
    step: int
    def __init__(self, step: _Optional[int] = ...) -> None: ...

class HackingWarning(_message.Message):
    __slots__ = ("guard", "worsening")
    GUARD_FIELD_NUMBER: _ClassVar[int]
    WORSENING_FIELD_NUMBER: _ClassVar[int]
    guard: str
    worsening: float
    def __init__(self, guard: _Optional[str] = ..., worsening: _Optional[float] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("run_id", "seq", "time", "step", "message", "state_change", "log", "step_metrics", "evaluation", "evaluation_progress", "adapter_published", "checkpoint_written", "resumed", "warning")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGE_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    STEP_METRICS_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    seq: int
    time: _timestamp_pb2.Timestamp
    step: int
    message: str
    state_change: StateChange
    log: LogNote
    step_metrics: StepMetrics
    evaluation: Evaluation
    evaluation_progress: EvaluationProgress
    adapter_published: AdapterPublished
    checkpoint_written: CheckpointWritten
    resumed: Resumed
    warning: HackingWarning
    def __init__(self, run_id: _Optional[str] = ..., seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step: _Optional[int] = ..., message: _Optional[str] = ..., state_change: _Optional[_Union[StateChange, _Mapping]] = ..., log: _Optional[_Union[LogNote, _Mapping]] = ..., step_metrics: _Optional[_Union[StepMetrics, _Mapping]] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ..., evaluation_progress: _Optional[_Union[EvaluationProgress, _Mapping]] = ..., adapter_published: _Optional[_Union[AdapterPublished, _Mapping]] = ..., checkpoint_written: _Optional[_Union[CheckpointWritten, _Mapping]] = ..., resumed: _Optional[_Union[Resumed, _Mapping]] = ..., warning: _Optional[_Union[HackingWarning, _Mapping]] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: RunConfig
    def __init__(self, config: _Optional[_Union[RunConfig, _Mapping]] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("state", "page_size", "page_token")
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    state: RunState
    page_size: int
    page_token: str
    def __init__(self, state: _Optional[_Union[RunState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("id", "after_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    after_seq: int
    def __init__(self, id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class WatchRunResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: RunEvent
    def __init__(self, event: _Optional[_Union[RunEvent, _Mapping]] = ...) -> None: ...
