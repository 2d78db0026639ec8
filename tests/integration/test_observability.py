"""Services + a real Prometheus: every dashboard query and recording rule returns series.

Starts critic, generator, trainer and feedback as separate processes (each its own
/metrics), a Prometheus on the committed scrape config and rule files (targets
rewritten to the test's ports, 1 s intervals), sends traffic through both
transports plus a short alignment run and a rating, then evaluates through Prometheus' HTTP
API: every panel query of the committed dashboards and every recording rule
must return at least one series; every alert expression must evaluate, and
every metric any of them names must be exported by a service.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from lift.client import CriticClient
from lift.video.samples import write_samples
from tools import prometheus
from tools.processes import free_port, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

DASHBOARDS = prometheus.DEPLOY_DIR / "grafana" / "dashboards"
RULES = prometheus.PROMETHEUS_DIR / "rules"
SERVICES = ("critic", "generator", "trainer")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_generator_dir: Path) -> Iterator[dict]:
    root = tmp_path_factory.mktemp("observability")
    ports = {name: (free_port(), free_port()) for name in SERVICES}
    env = {
        **os.environ,
        "LIFT_GENERATOR_MODEL": str(tiny_generator_dir),
        "LIFT_TRAINER_DATA_DIR": str(root / "trainer"),
        # The trainer may call the generator and critic started here and read the session's
        # fixtures (the tiny model, the real clips), as an operator would configure it.
        "LIFT_TRAINER_GENERATOR_ADDRESS": f"127.0.0.1:{ports['generator'][0]}",
        "LIFT_TRAINER_CRITIC_ADDRESS": f"127.0.0.1:{ports['critic'][0]}",
        "LIFT_TRAINER_DATA_ROOTS": str(tiny_generator_dir.parent.parent),
        **{f"LIFT_{n.upper()}_LOG_LEVEL": "WARNING" for n in SERVICES},
    }
    procs: list[subprocess.Popen[bytes]] = []
    # The feedback service (HTTP only) with one clip to rate.
    clips = root / "clips"
    write_samples(clips, ("clean",))
    (clips / "prompts.jsonl").write_text('{"video": "clean.mp4", "prompt": "shapes move"}\n')
    feedback_http = free_port()
    try:
        for name, (grpc_port, http_port) in ports.items():
            cmd = [sys.executable, "-m", "lift.cli.main", name, "serve"]
            cmd += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
            procs.append(subprocess.Popen(cmd, env=env))
        feedback = [sys.executable, "-m", "lift.cli.main", "feedback", "serve", "--videos",
                    str(clips), "--data", str(root / "feedback"), "--http-port",
                    str(feedback_http)]  # fmt: skip
        procs.append(subprocess.Popen(feedback, env=env))
        every = {**ports, "feedback": (None, feedback_http)}
        prom_port = free_port()
        config = prometheus.write_config(
            root / "prometheus.yml",
            {f"lift-{n}": [f"127.0.0.1:{http}"] for n, (_, http) in every.items()}
            | {"triton": [f"127.0.0.1:{free_port()}"]},  # no Triton here: up == 0, no alert
            interval_s=1,
        )
        prom = prometheus.start(config, prom_port, root / "tsdb")
        procs.append(prom)
        for (name, (_, http)), p in zip(every.items(), procs, strict=False):
            wait_ready(p, f"http://127.0.0.1:{http}/readyz", name, timeout_s=180)
        prometheus.wait_ready(prom, prom_port)
        yield {"ports": every, "prometheus": f"http://127.0.0.1:{prom_port}", "root": root}
    finally:
        _stop(procs)


def _traffic(stack: dict, mp4s: dict[str, bytes], tiny_generator_dir: Path, real_dir: Path) -> None:
    ports = stack["ports"]
    critic_grpc, critic_http = ports["critic"]
    with CriticClient(f"127.0.0.1:{critic_grpc}") as client:
        client.critique(mp4s["clean"], "shapes move over a textured wall")
        client.score([(mp4s["judder"], "shapes"), (mp4s["noise"], "shapes")])
    files = {"video": ("clip.mp4", mp4s["flicker"], "video/mp4")}
    r = httpx.post(
        f"http://127.0.0.1:{critic_http}/v1/critiques", files=files, data={"prompt": "x"}
    )
    assert r.status_code == 200, r.text
    r = httpx.post(f"http://127.0.0.1:{critic_http}/v1/critiques", json={"prompt": "no video"})
    assert r.status_code == 400  # a caller's error: counted, but not a server error
    gen_http = ports["generator"][1]
    body = {
        "prompt": "a ball",
        "num_frames": 9,
        "height": 32,
        "width": 32,
        "num_inference_steps": 2,
    }
    r = httpx.post(f"http://127.0.0.1:{gen_http}/v1/generations", json=body, timeout=120)
    assert r.status_code == 200, r.text
    run = {
        "model": str(tiny_generator_dir),
        "generator": {"address": f"127.0.0.1:{ports['generator'][0]}"},
        "critic": {"address": f"127.0.0.1:{critic_grpc}"},
        "prompts": ["a dog runs"],
        "real_data": {"path": str(real_dir)},
        "sampling": {"num_frames": 9, "height": 32, "width": 32, "num_inference_steps": 2},
        "steps": 2,
        "publish_every": 1,
        "checkpoint_every": 1,
        "eval": {"prompts": ["a cat"], "seeds": [0, 1]},
    }
    trainer_http = f"http://127.0.0.1:{ports['trainer'][1]}"
    r = httpx.post(f"{trainer_http}/v1/runs", json=run)
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = httpx.get(f"{trainer_http}/v1/runs/{run_id}").json()["state"]
        if state in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(1)
    assert state == "succeeded"
    feedback = f"http://127.0.0.1:{ports['feedback'][1]}"
    who = {"X-Lift-Annotator": "ops"}
    item = httpx.get(f"{feedback}/v1/next", headers=who).json()["item"]
    labels = {"semantic_consistency": "good", "motion_smoothness": "good",
              "video_fidelity": "bad"}  # fmt: skip
    rating = {"item_id": item["item_id"], "labels": labels,
              "reasons": {"video_fidelity": "blurry"}}  # fmt: skip
    r = httpx.post(f"{feedback}/v1/ratings", json=rating, headers=who)
    assert r.status_code == 201, r.text


def _query(stack: dict, expr: str) -> list[dict]:
    r = httpx.get(f"{stack['prometheus']}/api/v1/query", params={"query": expr}, timeout=10)
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", f"{expr}: {body.get('error')}"
    result: list[dict] = body["data"]["result"]
    return result


def _panel_queries() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets") or []:
                out.append((f"{path.stem} / {panel['title']}", target["expr"]))
    return out


def _rules(kind: str) -> list[dict]:
    rules = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [r for r in group["rules"] if kind in r]
    return rules


_NOT_METRICS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "le",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric (and recorded series) names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery windows
    expr = re.sub(r"(?<![A-Za-z0-9_:.])\d+(?:ms|[smhdwy])\b", "", expr)  # offset durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word, rest = m.group(), expr[m.end() :].lstrip()
        if rest.startswith("(") or word in _NOT_METRICS:
            continue
        names.add(word)
    return names


def test_metric_names_parser() -> None:
    assert metric_names(
        'sum by (job) (rate(a_total{code=~"5.."}[5m])) / on (job) b:c:d offset 15m > 0.2'
    ) == {"a_total", "b:c:d"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))") == {
        "x_bucket"
    }


def test_every_panel_rule_and_alert_evaluates_on_real_metrics(
    stack: dict, mp4s: dict[str, bytes], tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    _traffic(stack, mp4s, tiny_generator_dir, offline_dataset / "real")
    records = _rules("record")
    alerts = _rules("alert")
    panels = _panel_queries()
    assert len(panels) >= 30 and len(records) >= 8 and len(alerts) >= 7

    # Prometheus scrapes every second and evaluates rules every second: wait until
    # each query has had the chance to see the traffic, then demand series.
    deadline = time.monotonic() + 60
    while True:
        empty = [f"{where}: {expr}" for where, expr in panels if not _query(stack, expr)]
        empty += [
            f"recording rule {r['record']}" for r in records if not _query(stack, r["record"])
        ]
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not empty, "queries with no series:\n" + "\n".join(empty)

    for rule in alerts:
        _query(stack, rule["expr"])  # evaluates without error (it may well be silent)

    exported = set()
    for _, http in stack["ports"].values():
        text = httpx.get(f"http://127.0.0.1:{http}/metrics").text
        exported |= {
            line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()
        }
    recorded = {r["record"] for r in records}
    exported |= {"up", "ALERTS"}  # Prometheus' own series
    named = set()
    for expr in [e for _, e in panels] + [r["expr"] for r in records + alerts]:
        named |= metric_names(expr)
    missing = sorted(n for n in named if n not in exported and n not in recorded)
    assert not missing, (
        f"metrics named by dashboards/rules/alerts that no service exports: {missing}"
    )


def test_no_alert_fires_on_a_healthy_stack(stack: dict) -> None:
    firing = _query(stack, 'ALERTS{alertstate="firing"}')
    assert not firing, [a["metric"] for a in firing]
