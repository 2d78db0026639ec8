"""Feedback-specific Prometheus metrics (request metrics come from lift.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Dimension, Label

RATINGS = Counter(
    "lift_feedback_ratings_total",
    "Labels given by annotators, per dimension (undone ratings included).",
    ["dimension", "label"],
)
for _d in DIMENSIONS:  # every series exists from start-up, so rates see 0, not nothing
    for _l in ASSESSED_LABELS:
        RATINGS.labels(_d.value, _l.value)
ACTIONS = Counter("lift_feedback_actions_total", "Annotator actions, by kind.", ["kind"])
for _k in ("rating", "skip", "flag", "undo"):
    ACTIONS.labels(_k)
ITEMS = Gauge("lift_feedback_items", "Items in the queue.")
COMPLETE = Gauge("lift_feedback_items_complete", "Items with as many ratings as the overlap asks.")
REMAINING = Gauge(
    "lift_feedback_queue_remaining", "Items that still need ratings (fewer than the overlap)."
)


def observe_rating(labels: dict[Dimension, Label]) -> None:
    """Count one accepted rating's labels."""
    ACTIONS.labels("rating").inc()
    for dim, label in labels.items():
        RATINGS.labels(dim.value, label.value).inc()


def set_queue(items: int, complete: int) -> None:
    """The queue gauges."""
    ITEMS.set(items)
    COMPLETE.set(complete)
    REMAINING.set(items - complete)
