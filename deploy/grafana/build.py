"""Grafana dashboards for the LiFT suite, generated as code with grafana-foundation-sdk.

Run ``python deploy/grafana/build.py`` after editing; it rewrites
``deploy/grafana/dashboards/*.json`` (committed, provisioned by
``provisioning/dashboards/lift.yml``). A test checks the committed JSON matches
this file, and the observability integration test evaluates every panel query
on a real Prometheus scraping the real services.

Queries avoid Grafana-only variables ($__rate_interval, template variables) so
that Prometheus itself can evaluate each one as written.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="lift-prometheus")
"""The datasource uid that provisioning/datasources/prometheus.yml creates."""


def _query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref)


def _series(title: str, unit: str, *queries: tuple[str, str], span: int = 12) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).datasource(DATASOURCE).span(span).height(8)
    for i, (expr, legend) in enumerate(queries):
        panel = panel.with_target(_query(expr, legend, chr(ord("A") + i)))
    return panel


def _stat(title: str, unit: str, expr: str, legend: str = "", span: int = 6) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .span(span)
        .height(4)
        .with_target(_query(expr, legend))
    )


def _requests(service: str) -> list[dashboard.Panel | timeseries.Panel | stat.Panel]:
    """The request panels every service dashboard starts with."""
    s = f'service="{service}"'
    return [
        _stat("Targets up", "none", f'sum(up{{job="lift-{service}"}})'),
        _stat("Requests/s", "reqps", f"sum(service:lift_requests:rate5m{{{s}}})"),
        _stat(
            "Server error ratio",
            "percentunit",
            f"max(service:lift_request_errors:ratio_rate5m{{{s}}})",
        ),
        _stat("In flight", "none", f"sum(lift_requests_in_flight{{{s}}})"),
        _series(
            "Requests by method and code",
            "reqps",
            (f"sum by (method, code) (service:lift_requests:rate5m{{{s}}})", "{{method}} {{code}}"),
        ),
        _series(
            "Latency p50 / p99 by method",
            "s",
            (f"service_method:lift_request_duration_seconds:p50_5m{{{s}}}", "p50 {{method}}"),
            (f"service_method:lift_request_duration_seconds:p99_5m{{{s}}}", "p99 {{method}}"),
        ),
        _series(
            "Queue and workers",
            "none",
            (f"sum(lift_queue_depth{{{s}}})", "waiting"),
            (f"sum(lift_queue_capacity{{{s}}})", "queue capacity"),
            (f"sum(lift_workers_busy{{{s}}})", "busy workers"),
            (f"sum(lift_workers{{{s}}})", "workers"),
        ),
        _series(
            "Queue saturation",
            "percentunit",
            (f"service:lift_queue:saturation{{{s}}}", "{{service}}"),
        ),
    ]


def _board(uid: str, title: str, description: str, rows: list[tuple[str, list]]) -> dict:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["lift"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
    )
    for row_title, panels in rows:
        board = board.with_row(dashboard.Row(row_title))
        for p in panels:
            board = board.with_panel(p)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder, sort_keys=True))


def critic() -> dict:
    """Critic: traffic, latency, labels per dimension, reward, decode and batching."""
    return _board(
        "lift-critic",
        "LiFT critic",
        "Critique traffic, latency, verdicts per dimension and batching.",
        [
            ("Requests", _requests("critic")),
            (
                "Verdicts",
                [
                    _series(
                        "Labels per dimension",
                        "short",
                        ("job:lift_critic_labels:rate5m", "{{dimension}} {{label}}"),
                    ),
                    _series(
                        "Reward",
                        "none",
                        ("job:lift_critic_reward:mean5m", "mean reward"),
                        (
                            "histogram_quantile(0.1, sum by (le) (rate(lift_critic_reward_bucket[5m])))",
                            "p10",
                        ),
                    ),
                ],
            ),
            (
                "Work",
                [
                    _series(
                        "Decode time p50 / p99",
                        "s",
                        (
                            "histogram_quantile(0.5, sum by (le) (rate(lift_critic_decode_seconds_bucket[5m])))",
                            "p50",
                        ),
                        (
                            "histogram_quantile(0.99, sum by (le) (rate(lift_critic_decode_seconds_bucket[5m])))",
                            "p99",
                        ),
                    ),
                    _series(
                        "Frames analysed/s",
                        "short",
                        ("sum(rate(lift_critic_frames_analysed_total[5m]))", "frames/s"),
                    ),
                    _series(
                        "Batch sizes (mean)",
                        "short",
                        (
                            "sum(rate(lift_critic_batch_size_sum[5m])) / sum(rate(lift_critic_batch_size_count[5m]))",
                            "items per Score request",
                        ),
                        (
                            "sum(rate(lift_critic_micro_batch_size_sum[5m])) / sum(rate(lift_critic_micro_batch_size_count[5m]))",
                            "videos per model call",
                        ),
                    ),
                    _stat("Model load time", "s", "max(lift_critic_model_load_seconds)"),
                    _stat(
                        "Backend",
                        "none",
                        "count by (backend, name) (lift_critic_backend_info)",
                        "{{backend}} {{name}}",
                    ),
                ],
            ),
        ],
    )


def generator() -> dict:
    """Generator: traffic, denoising step time, stages, videos, adapters."""
    return _board(
        "lift-generator",
        "LiFT generator",
        "Generation traffic, denoising speed, stage times and the adapter in use.",
        [
            ("Requests", _requests("generator")),
            (
                "Generation",
                [
                    _series(
                        "Denoising step time p50 / p90",
                        "s",
                        (
                            "histogram_quantile(0.5, sum by (le) (rate(lift_generator_step_seconds_bucket[5m])))",
                            "p50",
                        ),
                        ("job:lift_generator_step_seconds:p90_5m", "p90"),
                    ),
                    _series(
                        "Stage time (mean)",
                        "s",
                        (
                            "sum by (stage) (rate(lift_generator_stage_seconds_sum[5m])) / sum by (stage) (rate(lift_generator_stage_seconds_count[5m]))",
                            "{{stage}}",
                        ),
                    ),
                    _series(
                        "Videos by outcome",
                        "short",
                        (
                            "sum by (outcome) (increase(lift_generator_videos_total[5m]))",
                            "{{outcome}}",
                        ),
                    ),
                    _series(
                        "Adapter loads by outcome",
                        "short",
                        (
                            "sum by (outcome) (increase(lift_generator_adapter_loads_total[1h]))",
                            "{{outcome}}",
                        ),
                    ),
                    _stat(
                        "Adapter in use",
                        "none",
                        "count by (version) (lift_generator_adapter_info)",
                        "{{version}}",
                    ),
                    _stat("Model load time", "s", "max(lift_generator_model_load_seconds)"),
                ],
            ),
        ],
    )


def trainer() -> dict:
    """Alignment runs: progress, reward per dimension beside the guard signals."""
    return _board(
        "lift-alignment",
        "LiFT alignment runs",
        "Runs by state, reward per dimension beside the guard signals it does not "
        "optimise (reward hacking shows as reward up while a guard worsens), "
        "throughput and checkpoints.",
        [
            (
                "Runs",
                [
                    _stat("Running", "none", 'sum(lift_trainer_runs{state="running"})'),
                    _stat("Queued", "none", 'sum(lift_trainer_runs{state="queued"})'),
                    _stat("Step", "none", "max(lift_trainer_step)"),
                    _stat("Checkpoint age", "s", "max(lift_trainer_checkpoint_age_seconds)"),
                    _series(
                        "Runs finished by state",
                        "short",
                        (
                            "sum by (state) (increase(lift_trainer_runs_finished_total[1h]))",
                            "{{state}}",
                        ),
                    ),
                    _series("Loss", "none", ("max(lift_trainer_loss)", "loss")),
                ],
            ),
            (
                "Reward and guards",
                [
                    _series(
                        "Reward per dimension",
                        "none",
                        ("max by (dimension) (lift_trainer_reward)", "{{dimension}}"),
                    ),
                    _series(
                        "Guard signals",
                        "none",
                        ("max by (guard) (lift_trainer_guard)", "{{guard}}"),
                    ),
                    _series(
                        "Reward vs dynamic degree (5 min means)",
                        "none",
                        ("instance:lift_trainer_reward_mean:avg5m", "reward"),
                        ("instance:lift_trainer_dynamic_degree:avg5m", "dynamic degree"),
                    ),
                    _series(
                        "Reward-hacking warnings",
                        "short",
                        (
                            "sum by (guard) (increase(lift_trainer_reward_hacking_warnings_total[1h]))",
                            "{{guard}}",
                        ),
                        (
                            'count(ALERTS{alertname="LiftRewardHacking", alertstate="firing"}) or vector(0)',
                            "alert firing",
                        ),
                    ),
                ],
            ),
            (
                "Throughput and dependencies",
                [
                    _series(
                        "Samples/s", "short", ("max(lift_trainer_samples_per_second)", "clips/s")
                    ),
                    _series(
                        "Step time p50 / p99",
                        "s",
                        (
                            "histogram_quantile(0.5, sum by (le) (rate(lift_trainer_step_seconds_bucket[5m])))",
                            "p50",
                        ),
                        (
                            "histogram_quantile(0.99, sum by (le) (rate(lift_trainer_step_seconds_bucket[5m])))",
                            "p99",
                        ),
                    ),
                    _series(
                        "Dependency latency p99",
                        "s",
                        (
                            "histogram_quantile(0.99, sum by (dependency, le) (rate(lift_trainer_dependency_seconds_bucket[5m])))",
                            "{{dependency}}",
                        ),
                    ),
                    _series(
                        "Adapters published",
                        "short",
                        ("sum(increase(lift_trainer_adapters_published_total[1h]))", "published"),
                    ),
                ],
            ),
        ],
    )


def feedback() -> dict:
    """Human feedback: the rating queue, what people rate, and the annotation API."""
    s = 'service="feedback"'
    return _board(
        "lift-feedback",
        "LiFT human feedback",
        "The rating queue (items, complete, still needing ratings), labels given per "
        "dimension, annotator actions (ratings, skips, flags, undos) and the annotation "
        "API's requests. Agreement (kappa) is on the service's /overview page.",
        [
            (
                "Queue",
                [
                    _stat("Targets up", "none", 'sum(up{job="lift-feedback"})'),
                    _stat("Items", "none", "sum(lift_feedback_items)"),
                    _stat(
                        "Coverage",
                        "percentunit",
                        "sum(lift_feedback_items_complete) / clamp_min(sum(lift_feedback_items), 1)",
                    ),
                    _stat("Still needing ratings", "none", "sum(lift_feedback_queue_remaining)"),
                ],
            ),
            (
                "Ratings",
                [
                    _series(
                        "Labels given per hour, by dimension and label",
                        "none",
                        (
                            "sum by (dimension, label) (increase(lift_feedback_ratings_total[1h]))",
                            "{{dimension}} {{label}}",
                        ),
                    ),
                    _series(
                        "Annotator actions per hour",
                        "none",
                        (
                            "sum by (kind) (increase(lift_feedback_actions_total[1h]))",
                            "{{kind}}",
                        ),
                    ),
                ],
            ),
            (
                "Annotation API",
                [
                    _stat("Requests/s", "reqps", f"sum(service:lift_requests:rate5m{{{s}}})"),
                    _stat(
                        "Server error ratio",
                        "percentunit",
                        f"max(service:lift_request_errors:ratio_rate5m{{{s}}})",
                    ),
                    _series(
                        "Requests by method and code",
                        "reqps",
                        (
                            f"sum by (method, code) (service:lift_requests:rate5m{{{s}}})",
                            "{{method}} {{code}}",
                        ),
                    ),
                    _series(
                        "Latency p50 / p99 by method",
                        "s",
                        (
                            f"service_method:lift_request_duration_seconds:p50_5m{{{s}}}",
                            "p50 {{method}}",
                        ),
                        (
                            f"service_method:lift_request_duration_seconds:p99_5m{{{s}}}",
                            "p99 {{method}}",
                        ),
                    ),
                ],
            ),
        ],
    )


DASHBOARDS = {
    "lift-critic.json": critic,
    "lift-generator.json": generator,
    "lift-alignment.json": trainer,
    "lift-feedback.json": feedback,
}


def render() -> dict[str, str]:
    """File name -> rendered JSON text."""
    return {
        name: json.dumps(build(), indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}", file=sys.stderr)
