"""The committed Prometheus config, rules, alert tests and Grafana dashboards are valid and current."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tools import prometheus

GRAFANA = prometheus.DEPLOY_DIR / "grafana"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus.binary("promtool"), *args],
        cwd=prometheus.PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_promtool_check_config_and_rules() -> None:
    r = _promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    rules = sorted(
        str(p.relative_to(prometheus.PROMETHEUS_DIR))
        for p in (prometheus.PROMETHEUS_DIR / "rules").glob("*.yml")
    )
    r = _promtool("check", "rules", *rules)
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_unit_tests_pass() -> None:
    """Reward-hacking fires when reward rises and dynamic degree falls, not when both rise."""
    r = _promtool("test", "rules", "tests/lift-alerts-test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_alert_unit_tests_would_catch_a_silent_hacking_alert(tmp_path: Path) -> None:
    """The promtool tests can fail: with the hacking alert removed, they do."""
    rules = yaml.safe_load((prometheus.PROMETHEUS_DIR / "rules" / "lift-alerts.yml").read_text())
    for group in rules["groups"]:
        group["rules"] = [r for r in group["rules"] if r.get("alert") != "LiftRewardHacking"]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "lift-alerts.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "rules" / "lift-recording.yml").write_text(
        (prometheus.PROMETHEUS_DIR / "rules" / "lift-recording.yml").read_text()
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yml").write_text(
        (prometheus.PROMETHEUS_DIR / "tests" / "lift-alerts-test.yml").read_text()
    )
    r = subprocess.run(
        [prometheus.binary("promtool"), "test", "rules", "tests/t.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "LiftRewardHacking" in r.stdout + r.stderr


def test_committed_dashboards_match_their_builder() -> None:
    spec = importlib.util.spec_from_file_location("grafana_build", GRAFANA / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rendered = build.render()
    assert set(rendered) == {p.name for p in (GRAFANA / "dashboards").glob("*.json")}
    for name, text in rendered.items():
        committed = (GRAFANA / "dashboards" / name).read_text()
        assert committed == text, f"{name} is stale: run python deploy/grafana/build.py"
        board = json.loads(text)
        assert all(
            p["datasource"]["uid"] == "lift-prometheus"
            for p in board["panels"]
            if p["type"] != "row"
        )


def test_write_config_rewrites_targets_and_refuses_unknown_jobs(tmp_path: Path) -> None:
    path = prometheus.write_config(
        tmp_path / "p.yml", {"lift-critic": ["127.0.0.1:1234"]}, interval_s=1
    )
    config = yaml.safe_load(path.read_text())
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs["lift-critic"] == ["127.0.0.1:1234"] and jobs["lift-trainer"] == ["localhost:8082"]
    assert config["global"]["scrape_interval"] == "1s"
    assert all(Path(f).is_absolute() and Path(f).is_file() for f in config["rule_files"])
    with pytest.raises(prometheus.PrometheusError, match="no job 'lift-nope'"):
        prometheus.write_config(tmp_path / "q.yml", {"lift-nope": ["x:1"]})
