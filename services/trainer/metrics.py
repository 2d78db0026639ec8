"""Trainer-specific Prometheus metrics (request metrics come from lift.metrics).

Labels are bounded: run ids are not labels (they grow without end); the gauges
describe the run in progress, and finished runs are counted by final state.

Run metrics come from one place: :class:`RunMetrics` subscribes to the runs'
events (the run manager hands it every event it stores) and sets the gauges and
counters from them; the training loop itself touches no metric.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from lift.runs import Event, RunState, StepMetrics
from lift.services.trainer.guards import GUARDS

RUNS = Gauge("lift_trainer_runs", "Runs known to the trainer by state.", ["state"])
RUNS_FINISHED = Counter(
    "lift_trainer_runs_finished_total", "Runs that reached a final state.", ["state"]
)
STEP = Gauge("lift_trainer_step", "Optimizer step of the run in progress.")
LOSS = Gauge("lift_trainer_loss", "Training loss of the last step (total objective).")
REWARD = Gauge(
    "lift_trainer_reward",
    "Mean critic reward of the last step's clips by dimension.",
    ["dimension"],
)
GUARD = Gauge(
    "lift_trainer_guard",
    "Guard signals the reward does not optimise: dynamic_degree, real_loss.",
    ["guard"],
)
HACKING_WARNINGS = Counter(
    "lift_trainer_reward_hacking_warnings_total",
    "Warnings that the reward rose while a guard worsened.",
    ["guard"],
)
SAMPLES_PER_SECOND = Gauge(
    "lift_trainer_samples_per_second", "Training clips processed per second (last step)."
)
STEP_SECONDS = Histogram(
    "lift_trainer_step_seconds",
    "Wall time of one optimizer step including sampling and scoring.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
MODEL_LOAD_SECONDS = Gauge(
    "lift_trainer_model_load_seconds", "Time the last run took to load its policy model."
)


class CheckpointClock:
    """Seconds since the run in progress last wrote a checkpoint (or started); 0 when idle.

    Read at scrape time, so an alert on it needs no clock arithmetic in PromQL and
    does not fire for a trainer that has simply finished its runs.
    """

    def __init__(self) -> None:
        self.since: float | None = None

    def start(self) -> None:
        """A run began (or resumed), or wrote a checkpoint: the clock starts again."""
        self.since = time.time()

    def stop(self) -> None:
        """No run in progress."""
        self.since = None

    def age(self) -> float:
        """The gauge's value."""
        return 0.0 if self.since is None else time.time() - self.since


CHECKPOINT_CLOCK = CheckpointClock()
CHECKPOINT_AGE = Gauge(
    "lift_trainer_checkpoint_age_seconds",
    "Seconds since the run in progress wrote its last checkpoint (or started); 0 when idle.",
)
CHECKPOINT_AGE.set_function(CHECKPOINT_CLOCK.age)
LAST_CHECKPOINT = Gauge(
    "lift_trainer_last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint written."
)
PUBLISHED = Counter("lift_trainer_adapters_published_total", "Adapters published to the generator.")
DEPENDENCY_SECONDS = Histogram(
    "lift_trainer_dependency_seconds",
    "Latency of successful calls to a dependency, per replica address.",
    ["dependency", "replica"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
DEPENDENCY_ERRORS = Counter(
    "lift_trainer_dependency_errors_total",
    "Failed calls to a dependency by replica address and gRPC code.",
    ["dependency", "replica", "code"],
)
# Known label values exist from start-up (0, not absent), so rates and alerts see them.
for _state in RunState:
    if _state.final:
        RUNS_FINISHED.labels(_state.value)
for _guard in GUARDS:
    HACKING_WARNINGS.labels(_guard)


class RunMetrics:
    """Turns run events into the metrics above: the trainer's one event -> metric mapping.

    ``counts`` gives the number of runs in each state (the store's view); the
    ``lift_trainer_runs`` gauge is refreshed from it on every state change.
    """

    def __init__(self, counts: Callable[[], Mapping[RunState, int]]) -> None:
        self.counts = counts

    def refresh_runs(self) -> None:
        """Set ``lift_trainer_runs`` from the store (also at start-up, before any event)."""
        for state, n in self.counts().items():
            RUNS.labels(state.value).set(n)

    def observe(self, event: Event) -> None:
        """Account for one stored event."""
        data = event.data
        if event.kind == "state":
            self.refresh_runs()
            state = RunState(data["state"])
            if state.final:
                RUNS_FINISHED.labels(state.value).inc()
        elif event.kind == "log" and "model_load_seconds" in data:
            # The model is loaded: training (and the wait for its first checkpoint) begins.
            MODEL_LOAD_SECONDS.set(data["model_load_seconds"])
            CHECKPOINT_CLOCK.start()
        elif event.kind == "step":
            self._step(StepMetrics.from_json(data, event.step))
        elif event.kind == "warning":
            HACKING_WARNINGS.labels(data["guard"]).inc()
        elif event.kind == "publish":
            PUBLISHED.inc()
        elif event.kind == "checkpoint":
            LAST_CHECKPOINT.set(event.time)
            CHECKPOINT_CLOCK.start()

    def run_ended(self) -> None:
        """A run's worker let go of it (finished, or left resumable at shutdown)."""
        CHECKPOINT_CLOCK.stop()

    @staticmethod
    def _step(m: StepMetrics) -> None:
        STEP.set(m.step)
        LOSS.set(m.loss)
        STEP_SECONDS.observe(m.seconds)
        SAMPLES_PER_SECOND.set(m.samples_per_second)
        REWARD.labels("mean").set(m.reward)
        for dimension, value in m.reward_by_dimension.items():
            REWARD.labels(dimension).set(value)
        for guard, signal in m.guards().items():
            if signal is not None:
                GUARD.labels(guard).set(signal)
