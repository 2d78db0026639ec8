"""Every LIFT_* variable the images, the compose files and the Kubernetes manifests set is a
setting the service reads (pydantic-settings ignores an unknown name: a typo would be dropped
without a word), and each service's settings load from what compose and the CPU overlay give it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from lift.services.critic.settings import CriticSettings
from lift.services.feedback.settings import FeedbackSettings
from lift.services.generator.settings import GeneratorSettings
from lift.services.trainer.settings import TrainerSettings
from lift.settings import SharedSettings
from tests.deploy.conftest import ROOT
from tests.deploy.test_compose import VARIANTS, render
from tests.deploy.test_k8s import K8S, container, kustomize, objects

SETTINGS: dict[str, type[BaseModel]] = {
    "CRITIC": CriticSettings,
    "GENERATOR": GeneratorSettings,
    "TRAINER": TrainerSettings,
    "FEEDBACK": FeedbackSettings,
}
# Read by something other than a service's settings class, and where.
OTHER = {
    "LIFT_AUTH_FILE": "auth_file" in SharedSettings.model_fields,
    "LIFT_VISION_GRAPH": "LIFT_VISION_GRAPH"
    in (ROOT / "deploy/triton/cpu/lift_critic_vision/1/model.py").read_text(),
}
HEALTHCHECK = (ROOT / "deploy/docker/healthcheck.py").read_text()


def known(name: str) -> bool:
    if name in OTHER:
        return OTHER[name]
    if name.startswith("LIFT_HEALTHCHECK_"):
        return name in HEALTHCHECK
    for prefix, cls in SETTINGS.items():
        if name.startswith(f"LIFT_{prefix}_"):
            return name.removeprefix(f"LIFT_{prefix}_").lower() in cls.model_fields
    return False


def dockerfile_env() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for path in sorted((ROOT / "deploy/docker").glob("*.Dockerfile")):
        text = path.read_text().replace("\\\n", " ")
        env: dict[str, str] = {}
        for line in text.splitlines():
            if line.startswith("ENV "):
                env.update(re.findall(r"(\w+)=(\S+)", line))
        out[path.name] = env
    return out


@pytest.fixture(scope="module")
def everywhere() -> dict[str, dict[str, Any]]:
    """Where each variable set comes from -> its variables."""
    found: dict[str, dict[str, Any]] = dict(dockerfile_env())
    for variant, files in VARIANTS.items():
        for name, svc in render(files, ["triton"])["services"].items():
            found[f"compose {variant} {name}"] = svc.get("environment", {})
    for overlay in ("cpu", "gpu"):
        for name, dep in objects(kustomize(K8S / f"overlays/{overlay}"), "Deployment").items():
            found[f"k8s {overlay} {name}"] = {
                e["name"]: e.get("value") for e in container(dep).get("env", [])
            }
    text = (K8S / "components/tls/services.yaml").read_text()
    found["k8s tls component"] = dict.fromkeys(re.findall(r"name: (LIFT_\w+)", text), "")
    return found


def test_every_lift_variable_is_read_by_someone(everywhere: dict[str, dict[str, Any]]) -> None:
    unknown = {
        f"{where}: {name}"
        for where, env in everywhere.items()
        for name in env
        if name.startswith("LIFT_") and not known(name)
    }
    assert not unknown, sorted(unknown)
    names = {n for env in everywhere.values() for n in env}
    assert "LIFT_TRAINER_CLIENT_TOKEN_FILE" in names and "LIFT_CRITIC_TLS_CERT_FILE" in names


def test_a_misspelt_variable_is_caught() -> None:
    assert known("LIFT_TRAINER_DATA_DIR") and not known("LIFT_TRAINER_DATA_DIRS")
    assert not known("LIFT_CRITC_HOST") and not known("LIFT_HEALTHCHECK_NOPE")


@pytest.mark.parametrize("service", ["critic", "generator", "trainer", "feedback"])
def test_settings_load_from_image_and_compose(
    service: str,
    everywhere: dict[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The image's ENV then compose's environment, as the container would see them (the
    tokens file replaced by a real one here: the settings read it at start-up only)."""
    env = {**everywhere[f"{service}.Dockerfile"], **everywhere[f"compose base {service}"]}
    for name in [n for n in os.environ if n.startswith("LIFT_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name.startswith("LIFT_"):
            monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("LIFT_AUTH_FILE", str(tmp_path / "tokens.json"))
    settings = SETTINGS[service.upper()]()  # type: ignore[call-arg]
    assert settings.host == "0.0.0.0"  # type: ignore[attr-defined]
    assert settings.auth_file == tmp_path / "tokens.json"  # type: ignore[attr-defined]
