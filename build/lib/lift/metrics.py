"""Request metrics every service exports, the same names for gRPC and HTTP."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

from lift import __version__

REQUESTS = Counter(
    "lift_requests_total",
    "Requests handled, by outcome.",
    ["service", "transport", "method", "code"],
)
LATENCY = Histogram(
    "lift_request_duration_seconds",
    "Request latency.",
    ["service", "transport", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
IN_FLIGHT = Gauge("lift_requests_in_flight", "Requests being handled.", ["service", "transport"])
QUEUE_DEPTH = Gauge("lift_queue_depth", "Requests waiting for a worker.", ["service"])
WORKERS_BUSY = Gauge("lift_workers_busy", "Workers computing a request.", ["service"])
QUEUE_CAPACITY = Gauge(
    "lift_queue_capacity", "Requests that may wait before new ones are refused.", ["service"]
)
WORKERS = Gauge("lift_workers", "Worker slots computing requests.", ["service"])
BUILD = Info("lift_build", "Version of the lift suite.")
BUILD.info({"version": __version__})
