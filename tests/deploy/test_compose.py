"""deploy/compose: Debian's docker-compose (make setup installs it) validates the file with each
overlay and profile, then the rendered configuration is checked: health-gated start order, the
healthcheck and the tokens file on every service, TLS wired through secrets, GPUs reserved,
Prometheus with our rules (promtool) and Grafana with our datasource uid and dashboards."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import ROOT, tool

COMPOSE_DIR = ROOT / "deploy" / "compose"
LIFT = ["critic", "generator", "trainer", "feedback"]
VARIANTS = {
    "base": ["compose.yaml"],
    "tls": ["compose.yaml", "compose.tls.yaml"],
    "gpu": ["compose.yaml", "compose.gpu.yaml"],
}


def render(files: list[str], profiles: list[str], cwd: Path = COMPOSE_DIR) -> dict[str, Any]:
    """`docker-compose config` of the files: its exit status and what it prints, parsed."""
    compose = tool("docker-compose", "Debian's docker-compose package")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFT_", "COMPOSE_"))}
    args = [compose, "--project-name", "lift"]
    for f in files:
        args += ["-f", f]
    for p in profiles:
        args += ["--profile", p]
    run = subprocess.run(
        [*args, "config"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"docker-compose config {files} {profiles}: {run.stderr}"
    return yaml.safe_load(run.stdout)


@pytest.fixture(scope="module")
def rendered() -> dict[tuple[str, bool], dict[str, Any]]:
    return {
        (name, triton): render(files, ["triton"] if triton else [])
        for name, files in VARIANTS.items()
        for triton in (False, True)
    }


def test_docker_compose_is_the_tool_that_rejects_a_broken_file(tmp_path: Path) -> None:
    """The validation can fail: a start order on a service that does not exist is refused."""
    broken = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    broken["services"]["trainer"]["depends_on"]["judge"] = {"condition": "service_healthy"}
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    compose = tool("docker-compose", "Debian's docker-compose package")
    run = subprocess.run(
        [compose, "-f", "compose.yaml", "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "judge" in run.stderr


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_services_and_profiles(rendered: dict, variant: str) -> None:
    # docker-compose 1.29's `config` lists profiled services too (profiles apply at `up`):
    # Triton is the only one behind a profile, so a plain `up` starts everything else.
    for triton in (False, True):
        services = rendered[(variant, triton)]["services"]
        assert set(services) == {*LIFT, "prometheus", "grafana", "triton"}
        assert services["triton"]["profiles"] == ["triton"]
        assert not [n for n, s in services.items() if n != "triton" and "profiles" in s]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_health_gated_start_and_auth(rendered: dict, variant: str) -> None:
    services = rendered[(variant, True)]["services"]
    trainer = services["trainer"]
    assert trainer["depends_on"] == {
        "critic": {"condition": "service_healthy"},
        "generator": {"condition": "service_healthy"},
    }
    assert services["grafana"]["depends_on"] == {"prometheus": {"condition": "service_healthy"}}
    for name in [*LIFT, "prometheus", "grafana", "triton"]:
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    for name in LIFT:
        svc = services[name]
        assert svc["healthcheck"]["test"] == ["CMD", "python", "/opt/lift/healthcheck.py", name]
        assert svc["environment"]["LIFT_AUTH_FILE"] == "/run/secrets/lift_tokens"
        assert {"source": "lift_tokens"} in svc["secrets"]
        assert svc["build"]["dockerfile"] == f"deploy/docker/{name}.Dockerfile"
        assert (Path(svc["build"]["context"]) / svc["build"]["dockerfile"]).is_file()
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"]), svc["ports"]
    assert trainer["environment"]["LIFT_TRAINER_GENERATOR_ADDRESS"] == "generator:50052"
    assert trainer["environment"]["LIFT_TRAINER_CRITIC_ADDRESS"] == "critic:50051"
    assert trainer["environment"]["LIFT_TRAINER_RESOLVE_ENDPOINTS"] == "true"
    assert (
        trainer["environment"]["LIFT_TRAINER_CLIENT_TOKEN_FILE"]
        == "/run/secrets/lift_trainer_token"
    )
    assert services["critic"]["environment"]["LIFT_CRITIC_TRITON_URL"] == "triton:8001"


def test_tls_overlay_wires_certificates_through_secrets(rendered: dict) -> None:
    config = rendered[("tls", False)]
    services = config["services"]
    for name in LIFT:
        env, secrets = services[name]["environment"], services[name]["secrets"]
        prefix = f"LIFT_{name.upper()}_"
        assert env[prefix + "TLS_CERT_FILE"] == "/run/secrets/lift_tls_cert"
        assert env[prefix + "TLS_KEY_FILE"] == "/run/secrets/lift_tls_key"
        assert {"source": "lift_tls_cert"} in secrets and {"source": "lift_tls_key"} in secrets
        assert {"source": "lift_tokens"} in secrets, f"{name} lost its tokens file"
    assert (
        services["trainer"]["environment"]["LIFT_TRAINER_CLIENT_CA_FILE"]
        == "/run/secrets/lift_tls_ca"
    )
    assert {"source": "lift_trainer_token"} in services["trainer"]["secrets"]
    assert any(
        v.startswith(str(COMPOSE_DIR / "prometheus-tls.yml"))
        for v in services["prometheus"]["volumes"]
    )
    assert set(config["secrets"]) >= {"lift_tls_cert", "lift_tls_key", "lift_tls_ca", "lift_tokens"}
    # Without the overlay: no TLS settings at all (plain HTTP on the compose network).
    base = rendered[("base", False)]["services"]
    assert not [k for n in LIFT for k in base[n]["environment"] if "TLS" in k]


def test_gpu_overlay_reserves_gpus_for_cuda_images(rendered: dict) -> None:
    services = rendered[("gpu", False)]["services"]
    for name in ("critic", "generator", "trainer"):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        assert services[name]["build"]["args"]["VARIANT"] == "cuda"
        assert services[name]["image"] == f"lift-{name}:cuda"
    assert "deploy" not in services["feedback"]
    assert rendered[("base", False)]["services"]["critic"]["build"]["args"]["VARIANT"] == "cpu"


def _mount(service: dict, target: str) -> Path:
    for volume in service["volumes"]:
        source, _, rest = volume.partition(":")
        if rest.split(":")[0] == target:
            return Path(source)
    raise AssertionError(f"nothing mounted at {target}: {service['volumes']}")


@pytest.mark.parametrize("variant", ["base", "tls"])
def test_prometheus_config_and_rules_load(rendered: dict, variant: str, tmp_path: Path) -> None:
    """promtool checks the config Prometheus gets, with the rules mounted beside it."""
    promtool = tool("promtool", "Debian's prometheus package")
    prom = rendered[(variant, False)]["services"]["prometheus"]
    config = _mount(prom, "/etc/prometheus/prometheus.yml")
    rules = _mount(prom, "/etc/prometheus/rules")
    assert rules.resolve() == (ROOT / "lift/data/prometheus/rules").resolve()
    shutil.copy(config, tmp_path / "prometheus.yml")
    shutil.copytree(rules, tmp_path / "rules")
    if variant == "tls":  # the CA secret the config names, at the path it names
        text = (
            (tmp_path / "prometheus.yml").read_text().replace("/run/secrets/lift_tls_ca", "ca.crt")
        )
        (tmp_path / "prometheus.yml").write_text(text)
        (tmp_path / "ca.crt").write_text("")
    run = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    # The job names the rules and dashboards match on (the packaged config's), plus feedback.
    packaged = yaml.safe_load((ROOT / "lift/data/prometheus/prometheus.yml").read_text())
    assert set(jobs) == {j["job_name"] for j in packaged["scrape_configs"]} | {"lift-feedback"}
    ports = {"critic": 8080, "generator": 8081, "trainer": 8082, "feedback": 8083}
    for name, port in ports.items():
        assert jobs[f"lift-{name}"]["static_configs"][0]["targets"] == [f"{name}:{port}"]
        assert jobs[f"lift-{name}"].get("scheme", "http") == (
            "https" if variant == "tls" else "http"
        )


def test_grafana_gets_our_datasource_and_dashboards(rendered: dict) -> None:
    grafana = rendered[("base", False)]["services"]["grafana"]
    datasource = yaml.safe_load(
        _mount(grafana, "/etc/grafana/provisioning/datasources/lift.yml").read_text()
    )
    ours = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    (ds,) = datasource["datasources"]
    assert ds["uid"] == ours["datasources"][0]["uid"]  # the uid every panel names
    assert ds["url"] == "http://prometheus:9090"
    providers = _mount(grafana, "/etc/grafana/provisioning/dashboards")
    path = yaml.safe_load((providers / "lift.yml").read_text())["providers"][0]["options"]["path"]
    dashboards = _mount(grafana, path)
    assert sorted(p.name for p in dashboards.glob("*.json")) == sorted(
        p.name for p in (ROOT / "deploy/grafana/dashboards").glob("*.json")
    ) and list(dashboards.glob("*.json"))
    assert (
        grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
        == "/run/secrets/grafana_admin_password"
    )
