"""Generator-specific Prometheus metrics (request metrics come from lift.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

MODEL_LOAD_SECONDS = Gauge("lift_generator_model_load_seconds", "Time the pipeline took to load.")
MODEL_INFO = Info("lift_generator_model", "Pipeline, model, device and dtype the generator serves.")
ADAPTER_INFO = Info("lift_generator_adapter", "Adapter version new requests get.")
STEP_SECONDS = Histogram(
    "lift_generator_step_seconds",
    "Time of one denoising step.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STAGE_SECONDS = Histogram(
    "lift_generator_stage_seconds",
    "Time per stage of a generation: queue, denoise, decode, encode.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
VIDEOS = Counter(
    "lift_generator_videos_total", "Generations by outcome: ok, cancelled, failed.", ["outcome"]
)
ADAPTER_LOADS = Counter(
    "lift_generator_adapter_loads_total", "Adapter loads by outcome: ok, refused.", ["outcome"]
)
for _outcome in ("ok", "cancelled", "failed"):  # series exist from start-up (0, not absent)
    VIDEOS.labels(_outcome)
for _outcome in ("ok", "refused"):
    ADAPTER_LOADS.labels(_outcome)
