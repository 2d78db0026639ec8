"""The images' HEALTHCHECK script against a real critic: plain HTTP with a tokens file (/readyz
needs no token), TLS, and mutual TLS with and without the check's client certificate."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from lift.auth import Scope, add_token
from lift.runner import ServiceRunner
from tests.deploy.conftest import ROOT
from tests.security.test_tls import Pki, _start, pki  # noqa: F401  (the throw-away CA fixture)

SCRIPT = ROOT / "deploy" / "docker" / "healthcheck.py"


def healthcheck(runner: ServiceRunner, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LIFT_")}
    clean["LIFT_CRITIC_HTTP_PORT"] = str(runner.http_port)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "critic"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def authed_critic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceRunner]:
    tokens = tmp_path_factory.mktemp("auth") / "tokens.json"
    add_token(tokens, "someone", [Scope.JUDGE])
    runner, stop = _start(auth_file=tokens)
    yield runner
    stop()  # type: ignore[operator]


def test_plain_http_with_tokens(authed_critic: ServiceRunner) -> None:
    run = healthcheck(authed_critic)
    assert run.returncode == 0, run.stderr


def test_the_autoscaler_metric_is_served(authed_critic: ServiceRunner) -> None:
    """The series the critic's HPA reads (deploy/k8s/base/critic.yaml, through
    prometheus-adapter), on the /metrics the ServiceMonitor scrapes without a token."""
    text = httpx.get(f"http://127.0.0.1:{authed_critic.http_port}/metrics", timeout=10).text
    assert re.search(r'^lift_queue_depth\{service="critic"\} \d', text, re.M), text[:2000]


def test_tls(pki: Pki) -> None:  # noqa: F811
    runner, stop = _start(tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    try:
        on = healthcheck(runner, LIFT_CRITIC_TLS_CERT_FILE=str(pki.server_cert))
        assert on.returncode == 0, on.stderr
        plain = healthcheck(runner)  # HTTP against the HTTPS port: not healthy
        assert plain.returncode == 1
    finally:
        stop()  # type: ignore[operator]


def test_mutual_tls(pki: Pki) -> None:  # noqa: F811
    runner, stop = _start(
        tls_cert_file=pki.server_cert, tls_key_file=pki.server_key, tls_client_ca_file=pki.ca
    )
    server = {
        "LIFT_CRITIC_TLS_CERT_FILE": str(pki.server_cert),
        "LIFT_CRITIC_TLS_CLIENT_CA_FILE": str(pki.ca),
    }
    try:
        ok = healthcheck(
            runner,
            **server,
            LIFT_HEALTHCHECK_CERT_FILE=str(pki.client_cert),
            LIFT_HEALTHCHECK_KEY_FILE=str(pki.client_key),
        )
        assert ok.returncode == 0, ok.stderr
        missing = healthcheck(runner, **server)
        assert missing.returncode == 1 and "LIFT_HEALTHCHECK_CERT_FILE" in missing.stderr
        stranger = healthcheck(
            runner,
            **server,
            LIFT_HEALTHCHECK_CERT_FILE=str(pki.stranger_cert),
            LIFT_HEALTHCHECK_KEY_FILE=str(pki.stranger_key),
        )
        assert stranger.returncode == 1  # a certificate the service's CA did not sign
    finally:
        stop()  # type: ignore[operator]
