"""Wire models of the trainer's HTTP API (pydantic), converted at the edge only.

The request is the run config itself (:class:`~lift.services.trainer.config.RunConfig`,
as JSON or YAML). Responses: :class:`RunJSON`, :class:`RunListJSON`,
:class:`TrainerInfoJSON`, and :class:`RunEventJSON` for each server-sent event. The
models validate the dicts the run and event types already write (their ``to_json``),
so the JSON has one writer and this module documents and checks it.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lift.http import schema_examples
from lift.runs import RunState
from lift.services.trainer.config import RunConfig


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ToJSON(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class BeforeAfterJSON(_Wire):
    """A guard signal on the held-out prompts before and after the run."""

    before: float | None
    after: float | None


class GuardComparisonJSON(_Wire):
    """The signals the reward does not optimise, before and after (reward hacking shows here)."""

    dynamic_degree: BeforeAfterJSON
    real_loss: BeforeAfterJSON


class RunResultJSON(_Wire):
    """What a succeeded run produced; the evaluation fields come with held-out prompts."""

    steps: int = Field(..., description="Optimizer steps taken.")
    adapter_dir: str | None = Field(None, description="Where the final LoRA adapter is.")
    adapter_version: str | None = Field(None, description="Its version on the generator.")
    reward_before: float | None = Field(None, description="Mean held-out reward before.")
    reward_after: float | None = Field(None, description="Mean held-out reward after.")
    gain: float | None = Field(None, description="Mean paired gain (after - before).")
    ci95: float | None = Field(None, description="95 % CI half-width of the gain.")
    ci95_before: float | None = None
    ci95_after: float | None = None
    significant: bool | None = Field(None, description="gain - ci95 > 0.")
    n: int | None = Field(None, description="Held-out items (prompt x seed).")
    guards: GuardComparisonJSON | None = None
    warnings: list[str] = Field(
        default_factory=list, description="Reward-hacking guards that fired."
    )


_RUN_EXAMPLE: dict[str, Any] = {
    "id": "run-3f9a1c2e",
    "name": "corgi-smoothness",
    "state": "succeeded",
    "step": 100,
    "total_steps": 100,
    "reason": "",
    "adapter_version": "run-3f9a1c2e/step-100",
    "created_unix_s": 1767225600.0,
    "started_unix_s": 1767225601.5,
    "finished_unix_s": 1767229201.0,
    "resumes": 0,
    "config": {"name": "corgi-smoothness", "prompts": ["a corgi runs on the beach"]},
    "result": {
        "steps": 100,
        "adapter_dir": "/data/trainer/runs/run-3f9a1c2e/adapter",
        "adapter_version": "run-3f9a1c2e/step-100",
        "reward_before": 0.412,
        "reward_after": 0.468,
        "gain": 0.056,
        "ci95": 0.021,
        "ci95_before": 0.034,
        "ci95_after": 0.031,
        "significant": True,
        "n": 8,
        "guards": {
            "dynamic_degree": {"before": 0.31, "after": 0.29},
            "real_loss": {"before": None, "after": None},
        },
        "warnings": [],
    },
}


class RunJSON(_Wire):
    """One alignment run."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=schema_examples(_RUN_EXAMPLE))

    id: str
    name: str
    state: RunState
    step: int = Field(..., description="The last optimizer step finished.")
    total_steps: int
    reason: str = Field(..., description="Why it failed or was cancelled; empty otherwise.")
    adapter_version: str = Field(..., description="The last version published; empty before.")
    created_unix_s: float
    started_unix_s: float | None
    finished_unix_s: float | None
    resumes: int = Field(..., description="Times it resumed from a checkpoint after a restart.")
    config: RunConfig = Field(..., description="The run config, every default filled in.")
    result: RunResultJSON | None = Field(..., description="Null until the run succeeds.")

    @classmethod
    def of(cls, run: _ToJSON) -> RunJSON:
        """The wire form of a run (from its one JSON writer, ``to_json``)."""
        return cls.model_validate(run.to_json())


class RunListJSON(_Wire):
    """Response of GET /v1/runs."""

    runs: list[RunJSON] = Field(..., description="Newest first.")
    next_page_token: str = Field(
        "", description="Pass as ?page_token= for the next page; empty on the last page."
    )


class RunEventJSON(_Wire):
    """One thing that happened in a run: the ``data:`` of each server-sent event."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=schema_examples(
            {
                "run_id": "run-3f9a1c2e",
                "seq": 5,
                "time_unix_s": 1767225630.2,
                "kind": "step",
                "step": 2,
                "message": "step 2/100: reward 0.4310, loss 0.1823",
                "data": {"step": 2, "loss": 0.1823, "reward": 0.431},
            }
        ),
    )

    run_id: str
    seq: int = Field(..., description="Orders a run's events from 1; the SSE id.")
    time_unix_s: float
    kind: str = Field(
        ...,
        description="state, log, step, eval, eval_progress, publish, checkpoint, resumed or "
        "warning; also the SSE event name.",
    )
    step: int
    message: str = Field(..., description="A line for people.")
    data: dict[str, Any] = Field(
        ..., description="The kind's details, e.g. a step's metrics or the new state."
    )

    @classmethod
    def of(cls, event: _ToJSON) -> RunEventJSON:
        """The wire form of an event (from its one JSON writer, ``to_json``)."""
        return cls.model_validate(event.to_json())


class TrainerInfoJSON(_Wire):
    """Response of GET /v1/info."""

    service: str = Field(..., examples=["trainer"])
    suite_version: str
    data_dir: str
    concurrent_runs: int
    runs: dict[str, int] = Field(..., description="Runs held, by state.")
    strategies: list[str] = Field(..., description="Training strategies a run config may name.")
