"""The run config: what one alignment run does, validated field by field.

A run config is YAML or JSON (the same schema); :func:`parse_run_config` turns
either into a :class:`RunConfig` or raises :class:`InvalidInput` whose message
names every bad field (``optimizer.lr: Input should be greater than 0``).
The validated config, defaults filled in, is what the trainer stores with the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lift.errors import InvalidInput
from lift.reward import DEFAULT_BAD, DEFAULT_GOOD, DEFAULT_NORMAL, RewardMap, check_reward_map

MAX_PROMPT_CHARS = 2000
MAX_STEPS = 100_000
MAX_STEP_VIDEOS = 256
"""Most generated (or dataset) videos in one optimizer step (batch_size x videos_per_prompt)."""
MAX_VIDEO_VOXELS = 160 * 1024 * 1024
"""Most frames x height x width of one sampled video (HunyuanVideo's 129 x 720 x 1280 fits)."""
MAX_STEP_VOXELS = 2 * 1024**3
"""Most frames x height x width over one step's videos (6 GiB of uint8 RGB)."""
MAX_EVAL_VIDEOS = 1024
MAX_TIMEOUT_S = 3600.0


class _Strict(BaseModel):
    # Every float finite: NaN slips through ge/le bounds and inf through gt, and either
    # turns a run into one that never ends (grad_clip: .inf) or never learns.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class RewardMapConfig(_Strict):
    """Reward per label (paper Eq. 2); a video's reward is the mean over judged dimensions."""

    good: float = Field(DEFAULT_GOOD, ge=0, le=1)
    normal: float = Field(DEFAULT_NORMAL, ge=0, le=1)
    bad: float = Field(DEFAULT_BAD, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> RewardMapConfig:
        check_reward_map(self.good, self.normal, self.bad)
        return self

    def reward_map(self) -> RewardMap:
        """The validated map as the reward functions take it."""
        return RewardMap(self.good, self.normal, self.bad)


class RealDataConfig(_Strict):
    """Real videos with captions: the ``λ · L_v(real)`` term that keeps the model honest."""

    path: Path = Field(
        description="A directory of videos (captions from a captions.json {file: caption} or "
        "a .txt beside each video) or a JSON/JSONL file of {video, caption} records, under "
        "the trainer's data roots (LIFT_TRAINER_DATA_ROOTS)."
    )
    weight: float = Field(1.0, ge=0, le=100, description="λ, the weight of the real-video loss.")
    ratio: float = Field(
        0.5,
        ge=0,
        le=8,
        description="Real clips per generated clip in a step (paper: 20K real : 40K generated).",
    )


class LoraConfigModel(_Strict):
    """Which weights train: a LoRA adapter on the denoiser (default) or all of it."""

    rank: int = Field(8, ge=1, le=512)
    alpha: float = Field(8.0, gt=0, le=4096)
    target_modules: list[str] = Field(
        default_factory=lambda: ["to_q", "to_k", "to_v", "to_out.0"],
        min_length=1,
        max_length=256,
        description="Names (or name suffixes) of Linear layers of the denoiser.",
    )
    full_finetune: bool = Field(
        False,
        description="Train every denoiser weight instead of an adapter (no publishing: the "
        "generator swaps LoRA adapters only).",
    )


class OptimizerConfig(_Strict):
    """AdamW (paper recipe: lr 1e-5, betas 0.9/0.95, grad clip 1.0)."""

    lr: float = Field(1e-5, gt=0, le=1)
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = Field(0.0, ge=0, le=1)
    eps: float = Field(1e-8, gt=0, le=1)
    grad_clip: float = Field(1.0, gt=0, le=1e6, description="Max global gradient norm.")
    warmup_steps: int = Field(0, ge=0, le=MAX_STEPS, description="Linear learning-rate warm-up.")

    @field_validator("betas")
    @classmethod
    def _betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("both betas must be in [0, 1)")
        return v


class SamplingConfig(_Strict):
    """How the generator is asked for videos (unset: the generator's defaults)."""

    num_frames: int | None = Field(None, ge=1, le=257)
    height: int | None = Field(None, ge=16, le=2048)
    width: int | None = Field(None, ge=16, le=2048)
    num_inference_steps: int | None = Field(None, ge=1, le=500)
    guidance_scale: float | None = Field(None, ge=0, le=100)
    fps: float | None = Field(None, gt=0, le=240)

    @model_validator(mode="after")
    def _video_size(self) -> SamplingConfig:
        if self.num_frames and self.height and self.width:
            voxels = self.num_frames * self.height * self.width
            if voxels > MAX_VIDEO_VOXELS:
                raise ValueError(
                    f"num_frames x height x width is {voxels:,}; the limit is "
                    f"{MAX_VIDEO_VOXELS:,} per video"
                )
        return self

    def voxels(self) -> int | None:
        """frames x height x width of one video, when all three are set."""
        if self.num_frames and self.height and self.width:
            return self.num_frames * self.height * self.width
        return None


MAX_REPLICAS = 64
"""Most replicas of one dependency a run spreads its work over."""
_Address = Annotated[
    str,
    # no spaces: the address checked is the address dialled
    Field(min_length=1, max_length=300, pattern=r"^\S+$"),
]


class EndpointConfig(_Strict):
    """A gRPC dependency (one server or several replicas) and how the trainer calls it.

    Work is spread over the replicas: ``address`` plus ``addresses``, and with
    ``resolve`` every IP address their host names resolve to (a Kubernetes headless
    Service). The retry and outage policy below holds per replica: a replica that
    keeps failing is set aside (its work goes to the others) and tried again after
    ``retry_down_after_s``; the run fails only when no replica is left.
    """

    address: _Address = Field(
        description="host:port of the gRPC server (or of its first replica); it must be on "
        "the trainer's allow-list (LIFT_TRAINER_ALLOWED_ENDPOINTS).",
    )
    addresses: list[_Address] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS - 1,
        description="More replicas of the same service, host:port each (each on the "
        "allow-list); the run spreads its calls over all of them.",
    )
    resolve: bool = Field(
        False,
        description="Each host name stands for several replicas (a Kubernetes headless "
        "Service): every IP address it resolves to is a replica on the same port. "
        "Re-resolved every resolve_every_s and whenever no replica is left.",
    )
    resolve_every_s: float = Field(
        30.0, gt=0, le=MAX_TIMEOUT_S, description="How often resolve looks the names up again."
    )
    retry_down_after_s: float = Field(
        30.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        description="A replica set aside as down is tried again after this long.",
    )
    timeout_s: float = Field(120.0, gt=0, le=MAX_TIMEOUT_S, description="Deadline of one call.")
    retries: int = Field(
        4,
        ge=0,
        le=20,
        description="Retries after a failed call (per replica; past them it is down).",
    )
    backoff_s: float = Field(0.5, gt=0, le=60, description="First retry delay; doubles each retry.")
    down_after_s: float = Field(
        60.0,
        gt=0,
        le=MAX_TIMEOUT_S,
        description="A replica unreachable this long is down; with no replica left, the run fails.",
    )

    def targets(self) -> list[str]:
        """The configured addresses, first ``address``, each once."""
        return list(dict.fromkeys([self.address, *self.addresses]))


class EvalConfig(_Strict):
    """Held-out evaluation before and after the run (same prompts and seeds both times)."""

    prompts: list[str] = Field(
        default_factory=list, max_length=MAX_EVAL_VIDEOS, description="Empty: skip evaluation."
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1], min_length=1, max_length=64)

    @model_validator(mode="after")
    def _videos(self) -> EvalConfig:
        n = len(self.prompts) * len(self.seeds)
        if n > MAX_EVAL_VIDEOS:
            raise ValueError(
                f"prompts x seeds is {n} videos per evaluation; the limit is {MAX_EVAL_VIDEOS}"
            )
        return self

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        return [_check_prompt(p) for p in v]

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(not 0 <= s < 2**63 for s in v):
            raise ValueError("seeds must be in [0, 2^63)")
        return v


class GuardConfig(_Strict):
    """Reward-hacking watch: the reward rising while a signal it does not optimise falls."""

    window: int = Field(10, ge=1, le=10_000, description="Steps averaged at each end.")
    max_drop: float = Field(
        0.25,
        gt=0,
        le=10,
        description="Relative worsening of a guard (dynamic degree falling, real-clip loss "
        "rising) that raises a warning while the reward rises.",
    )
    min_reward_rise: float = Field(
        0.02, ge=0, le=1, description="Reward gain that counts as rising."
    )
    stop_on_warning: bool = Field(False, description="Fail the run when a warning fires.")


class OfflineDataConfig(_Strict):
    """A pre-scored dataset: train with no generator and no critic."""

    path: Path = Field(
        description="JSON or JSONL of {video, caption, reward} records (or {labels: "
        "{dimension: good|normal|bad}} instead of / beside reward); video paths are "
        "relative to the file; all under the trainer's data roots (LIFT_TRAINER_DATA_ROOTS)."
    )


class RunConfig(_Strict):
    """One alignment run. Every field has a default except what only the user can know."""

    name: str = Field("", max_length=200, description="A label for people; not unique.")
    mode: Literal["online", "offline"] = "online"
    model: Path | None = Field(
        None,
        description="The trainer's own copy of the T2V model (a diffusers pipeline directory "
        "under the trainer's data roots, LIFT_TRAINER_DATA_ROOTS). "
        "Unset: the embedded tiny demo model. It must be the model the generator serves.",
    )
    generator: EndpointConfig | None = Field(
        default_factory=lambda: EndpointConfig(address="localhost:50052")
    )
    critic: EndpointConfig | None = Field(
        default_factory=lambda: EndpointConfig(address="localhost:50051")
    )
    prompts: list[str] = Field(
        default_factory=list, max_length=100_000, description="Training prompts."
    )
    prompts_file: Path | None = Field(
        None,
        description="A text file, one prompt per line, under the trainer's data roots "
        "(LIFT_TRAINER_DATA_ROOTS); relative paths are relative to a root.",
    )
    strategy: Literal["reward_weighted", "rejection_sampling"] = "reward_weighted"
    reward_map: RewardMapConfig = Field(default_factory=RewardMapConfig)
    real_data: RealDataConfig | None = None
    offline_data: OfflineDataConfig | None = None
    lora: LoraConfigModel = Field(default_factory=LoraConfigModel)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    steps: int = Field(100, ge=1, le=MAX_STEPS, description="Optimizer steps.")
    batch_size: int = Field(2, ge=1, le=MAX_STEP_VIDEOS, description="Prompts per step.")
    videos_per_prompt: int = Field(1, ge=1, le=64)
    publish_every: int = Field(
        10,
        ge=0,
        le=MAX_STEPS,
        description="Publish the adapter to the generator every K steps (0: never).",
    )
    checkpoint_every: int = Field(
        10,
        ge=1,
        le=MAX_STEPS,
        description="Checkpoint every K steps (the trainer keeps the newest few and the best).",
    )
    seed: int = Field(0, ge=0, lt=2**63)
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:[0-9]{1,2})?)$",
        description="auto, cpu, cuda or cuda:N (single process).",
    )
    eval: EvalConfig = Field(default_factory=EvalConfig)
    guards: GuardConfig = Field(default_factory=GuardConfig)
    promote_on_success: bool = Field(
        False,
        description="When the run succeeds, make its last adapter the generator's default "
        "version (what callers naming no version get). Off: the run's versions serve only "
        "requests that name them; a cancelled or failed run never changes the default.",
    )

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: list[str]) -> list[str]:
        return [_check_prompt(p) for p in v]

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.promote_on_success and (
            self.lora.full_finetune
            or self.generator is None
            or (self.mode == "offline" and not self.eval.prompts)
        ):
            raise ValueError(
                "promote_on_success needs an adapter published to a generator: a LoRA run, "
                "online (or offline with eval prompts)"
            )
        if self.per_step_videos > MAX_STEP_VIDEOS:
            raise ValueError(
                f"batch_size x videos_per_prompt is {self.per_step_videos} videos per step; "
                f"the limit is {MAX_STEP_VIDEOS}"
            )
        voxels = self.sampling.voxels()
        if voxels is not None and voxels * self.per_step_videos > MAX_STEP_VOXELS:
            raise ValueError(
                f"a step's videos hold {voxels * self.per_step_videos:,} voxels (batch_size x "
                f"videos_per_prompt x num_frames x height x width); the limit is "
                f"{MAX_STEP_VOXELS:,}: sample fewer or smaller videos"
            )
        if self.mode == "online":
            if self.generator is None or self.critic is None:
                raise ValueError("online runs need both generator and critic endpoints")
            if not self.prompts and self.prompts_file is None:
                raise ValueError("online runs need prompts (a list) or prompts_file")
            if self.lora.full_finetune and self.publish_every:
                raise ValueError(
                    "full_finetune cannot publish to the generator (it swaps LoRA adapters "
                    "only): set publish_every to 0 or train a LoRA"
                )
        else:
            if self.offline_data is None:
                raise ValueError("offline runs need offline_data.path")
            if self.eval.prompts and (self.generator is None or self.critic is None):
                raise ValueError("evaluation needs generator and critic endpoints")
        return self

    @property
    def per_step_videos(self) -> int:
        """Generated (or dataset) videos per optimizer step."""
        return self.batch_size * self.videos_per_prompt

    def to_json(self) -> dict[str, Any]:
        """The config as JSON-able data, defaults included."""
        data: dict[str, Any] = json.loads(self.model_dump_json())
        return data


def _check_prompt(p: str) -> str:
    if not p.strip():
        raise ValueError("prompts must not be empty")
    if len(p) > MAX_PROMPT_CHARS:
        raise ValueError(f"prompts must be at most {MAX_PROMPT_CHARS} characters")
    return p


def validation_message(exc: ValidationError, limit: int = 6) -> str:
    """'field.path: message; ...' for the first ``limit`` errors."""
    parts = []
    for err in exc.errors()[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "config"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    more = len(exc.errors()) - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_run_config(
    source: str | bytes | dict[str, Any], defaults: dict[str, Any] | None = None
) -> RunConfig:
    """A validated config from YAML/JSON text or already-parsed data.

    ``defaults`` fill top-level fields the source leaves out (the trainer's own
    generator and critic endpoints) before validation.
    """
    data: Any = source
    if isinstance(source, bytes | str):
        try:
            text = source.decode("utf-8") if isinstance(source, bytes) else source
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"the run config is not UTF-8 text (byte {exc.start}): send it as UTF-8"
            ) from None
        if not text.strip():
            raise InvalidInput("the run config is empty: send a YAML or JSON object")
        try:
            data = yaml.safe_load(text)  # YAML is a superset of JSON
        except RecursionError:  # nesting deeper than the parser's stack
            raise InvalidInput("the run config is nested too deeply to be a run config") from None
        except ValueError:  # an integer past Python's 4300-digit conversion limit
            raise InvalidInput("the run config holds a number too long to be a setting") from None
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise InvalidInput(f"the run config is not valid YAML or JSON{at}") from None
    if not isinstance(data, dict):
        raise InvalidInput("the run config must be a mapping of fields (YAML or JSON object)")
    if defaults:
        data = {**defaults, **data}
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput("invalid run config: " + validation_message(exc)) from None
    return config


def load_run_config(path: Path) -> RunConfig:
    """Read and validate a YAML/JSON config file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the run config {path}: {exc.strerror}") from None
    return parse_run_config(text)
