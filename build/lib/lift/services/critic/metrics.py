"""Critic-specific Prometheus metrics (request metrics come from lift.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from lift.critique import Critique, Dimension, Label

MODEL_LOAD_SECONDS = Gauge("lift_critic_model_load_seconds", "Time the backend took to load.")
BACKEND_INFO = Info("lift_critic_backend", "Backend and model the critic serves.")
DECODE_SECONDS = Histogram(
    "lift_critic_decode_seconds",
    "Time to decode one video.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
FRAMES_ANALYSED = Counter("lift_critic_frames_analysed_total", "Frames the backend looked at.")
BATCH_SIZE = Histogram(
    "lift_critic_batch_size", "Items per Score request.", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
MICRO_BATCH_SIZE = Histogram(
    "lift_critic_micro_batch_size",
    "Videos judged together in one model call (micro-batching across requests).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
LABELS = Counter("lift_critic_labels_total", "Labels given, per dimension.", ["dimension", "label"])
for _d in Dimension:  # every series exists from start-up, so rates and alerts see 0, not nothing
    for _l in Label:
        LABELS.labels(_d.value, _l.value)
REWARD = Histogram(
    "lift_critic_reward",
    "Expected reward per critique.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
)


def observe_critique(c: Critique) -> None:
    """Count labels and observe the reward of one critique."""
    for d in c.dimensions:
        LABELS.labels(d.name.value, d.label.value).inc()
    if c.reward is not None:
        REWARD.observe(c.reward)
