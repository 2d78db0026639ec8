"""Tokens and scopes on every service and both fronts; browser hygiene on the HTTP front.

Each service runs in-process on loopback with one tokens file; every attack is replayed
as a caller would send it (no token, a made-up token, a token for another capability)
and the refusal is asserted, next to the same call with the right token succeeding.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import httpx
import pytest
from fastapi.routing import APIRoute
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from typer.testing import CliRunner

from lift.auth import ACCESS, Authenticator, AuthFileError, Scope, add_token, hash_token
from lift.cli.main import app as cli
from lift.clients.base import Credentials
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.generator.v1 import generator_pb2, generator_pb2_grpc
from lift.http.security import DOCS_PATHS, HEALTH_PATHS
from lift.runner import ServiceRunner, start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings
from lift.services.trainer.manager import RunManager
from lift.services.trainer.remote import Services, client_credentials
from lift.services.trainer.server import build_trainer
from lift.services.trainer.settings import TrainerSettings
from lift.trainer.v1 import trainer_pb2, trainer_pb2_grpc

SMALL = {"num_frames": 5, "height": 32, "width": 48, "num_inference_steps": 2}


@dataclass(frozen=True)
class Tokens:
    file: Path
    by_scope: dict[str, str]


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Tokens:
    file = tmp_path_factory.mktemp("auth") / "tokens.json"
    by_scope = {s.value: add_token(file, f"holder-{s.value}", [s]) for s in Scope}
    return Tokens(file, by_scope)


@dataclass
class Svc:
    name: str
    runner: ServiceRunner
    http: httpx.Client
    channel: grpc.Channel

    def close(self) -> None:
        self.http.close()
        self.channel.close()


def _start(name: str, build: Callable[[Any], ServiceRunner], settings: Any) -> tuple[Svc, Any]:
    runner, stop = start_in_thread(build, settings)
    svc = Svc(
        name,
        runner,
        httpx.Client(base_url=f"http://127.0.0.1:{runner.http_port}", timeout=60),
        grpc.insecure_channel(f"127.0.0.1:{runner.grpc_port}"),
    )
    return svc, stop


@pytest.fixture(scope="module")
def services(
    tokens: Tokens, tiny_generator_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Svc]]:
    common = {"grpc_port": 0, "http_port": 0, "log_level": "WARNING", "auth_file": tokens.file}
    started: dict[str, Svc] = {}
    stops = []
    try:
        for name, build, settings in [
            ("critic", build_critic, CriticSettings(**common)),
            ("generator", build_generator, GeneratorSettings(model=tiny_generator_dir, **common)),
            (
                "trainer",
                build_trainer,
                TrainerSettings(data_dir=tmp_path_factory.mktemp("trainer"), **common),
            ),
        ]:
            svc, stop = _start(name, build, settings)
            started[name] = svc
            stops.append(stop)
        yield started
    finally:
        for svc in started.values():
            svc.close()
        for stop in stops:
            stop()


def _bearer(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


# One protected call per service and front, with the scope it needs. Each returns the
# HTTP status, or the gRPC status name ("OK" when it worked).


def _http_call(svc: Svc, mp4: bytes, token: str | None) -> int:
    h = _bearer(token)
    if svc.name == "critic":
        item = {"prompt": "a ball", "video_b64": base64.b64encode(mp4).decode()}
        return svc.http.post("/v1/scores", json={"items": [item]}, headers=h).status_code
    if svc.name == "generator":
        body = {"prompt": "a cat", "seed": 1, **SMALL}
        return svc.http.post("/v1/generations", json=body, headers=h).status_code
    return svc.http.get("/v1/runs", headers=h).status_code


def _grpc_call(svc: Svc, mp4: bytes, token: str | None) -> str:
    md = tuple(_bearer(token).items())
    try:
        if svc.name == "critic":
            stub = critic_pb2_grpc.CriticServiceStub(svc.channel)
            item = critic_pb2.ScoreItem(prompt="a ball")
            item.video.data = mp4
            stub.Score(critic_pb2.ScoreRequest(items=[item]), metadata=md, timeout=60)
        elif svc.name == "generator":
            stub = generator_pb2_grpc.GeneratorServiceStub(svc.channel)
            req = generator_pb2.GenerateRequest(prompt="a cat", seed=1, **SMALL)
            list(stub.Generate(req, metadata=md, timeout=60))
        else:
            stub = trainer_pb2_grpc.TrainerServiceStub(svc.channel)
            stub.ListRuns(trainer_pb2.ListRunsRequest(), metadata=md, timeout=60)
    except grpc.RpcError as exc:
        return exc.code().name  # type: ignore[attr-defined]
    return "OK"


NEEDS = {"critic": "judge", "generator": "generate", "trainer": "runs"}
OTHER = {"critic": "runs", "generator": "judge", "trainer": "generate"}


@pytest.mark.parametrize("service", ["critic", "generator", "trainer"])
@pytest.mark.parametrize(
    ("who", "http_status", "grpc_status"),
    [
        ("none", 401, "UNAUTHENTICATED"),
        ("bad", 401, "UNAUTHENTICATED"),
        ("other scope", 403, "PERMISSION_DENIED"),
        ("right scope", 200, "OK"),
        ("admin", 200, "OK"),
    ],
)
def test_each_service_checks_tokens_and_scopes_on_both_fronts(
    services: dict[str, Svc],
    tokens: Tokens,
    mp4s: dict[str, bytes],
    service: str,
    who: str,
    http_status: int,
    grpc_status: str,
) -> None:
    token = {
        "none": None,
        "bad": "lift_" + "A" * 43,
        "other scope": tokens.by_scope[OTHER[service]],
        "right scope": tokens.by_scope[NEEDS[service]],
        "admin": tokens.by_scope["admin"],
    }[who]
    svc = services[service]
    assert _http_call(svc, mp4s["clean"], token) == http_status
    assert _grpc_call(svc, mp4s["clean"], token) == grpc_status


def test_http_refusals_use_the_error_model_and_a_bearer_challenge(
    services: dict[str, Svc], tokens: Tokens
) -> None:
    trainer = services["trainer"].http
    r = trainer.post("/v1/runs", json={"name": "x"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] == "UNAUTHENTICATED"
    assert "LIFT_TOKEN" in r.json()["error"]["message"]
    r = trainer.post("/v1/runs", json={"name": "x"}, headers=_bearer(tokens.by_scope["judge"]))
    assert r.status_code == 403
    assert r.json() == {
        "error": {
            "code": "PERMISSION_DENIED",
            "message": "the token 'holder-judge' lacks the 'runs' scope this call needs",
        }
    }
    # An unknown path answers 401 too: an anonymous caller does not learn which exist.
    assert trainer.get("/v1/secret").status_code == 401
    assert trainer.get("/v1/secret", headers=_bearer(tokens.by_scope["judge"])).status_code == 404
    # Two Authorization headers (a good and a bad one): neither counts, whichever comes first.
    good, bad = _bearer(tokens.by_scope["runs"]), {"authorization": "Bearer lift_nope"}
    for first, second in [(good, bad), (bad, good)]:
        headers = [*first.items(), *second.items()]
        r = trainer.get("/v1/runs", headers=headers)
        assert r.status_code == 400 and "one Authorization" in r.json()["error"]["message"]


def test_adapter_promotion_needs_the_adapters_scope(
    services: dict[str, Svc], tokens: Tokens
) -> None:
    gen = services["generator"]
    url = "/v1/adapters/base:promote"
    assert gen.http.post(url).status_code == 401
    assert gen.http.post(url, headers=_bearer(tokens.by_scope["generate"])).status_code == 403
    assert gen.http.post(url, headers=_bearer(tokens.by_scope["adapters"])).status_code == 200
    stub = generator_pb2_grpc.GeneratorServiceStub(gen.channel)
    req = generator_pb2.PromoteAdapterRequest(version="base")
    with pytest.raises(grpc.RpcError) as err:
        stub.PromoteAdapter(req, metadata=tuple(_bearer(tokens.by_scope["generate"]).items()))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    stub.PromoteAdapter(req, metadata=tuple(_bearer(tokens.by_scope["adapters"]).items()))


@pytest.mark.parametrize("service", ["critic", "generator", "trainer"])
def test_info_needs_any_valid_token_and_health_stays_open(
    services: dict[str, Svc], tokens: Tokens, service: str
) -> None:
    svc = services[service]
    assert svc.http.get("/v1/info").status_code == 401
    assert svc.http.get("/v1/info", headers=_bearer(tokens.by_scope["judge"])).status_code == 200
    for path in HEALTH_PATHS:
        assert svc.http.get(path).status_code == 200, path
    # Defaults: metrics (Prometheus scrapes) and docs (the public API) open.
    assert svc.http.get("/metrics").status_code == 200
    assert svc.http.get("/docs").status_code == 200
    assert svc.http.get("/openapi.json").status_code == 200
    health = health_pb2_grpc.HealthStub(svc.channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == 1  # SERVING, no token


def test_reflection_is_open_by_default(services: dict[str, Svc]) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(services["critic"].channel)
    req = reflection_pb2.ServerReflectionRequest(list_services="")
    names = [
        s.name
        for r in stub.ServerReflectionInfo(iter([req]))
        for s in r.list_services_response.service
    ]
    assert "lift.critic.v1.CriticService" in names


def test_metrics_docs_and_reflection_close_when_configured(tokens: Tokens) -> None:
    svc, stop = _start(
        "critic",
        build_critic,
        CriticSettings(
            grpc_port=0,
            http_port=0,
            log_level="WARNING",
            auth_file=tokens.file,
            open_metrics=False,
            open_docs=False,
            reflection=False,
        ),
    )
    try:
        for path in ["/metrics", *sorted(DOCS_PATHS - {"/docs/oauth2-redirect"})]:
            assert svc.http.get(path).status_code == 401, path
            assert svc.http.get(path, headers=_bearer(tokens.by_scope["judge"])).status_code == 200
        assert svc.http.get("/healthz").status_code == 200
        stub = reflection_pb2_grpc.ServerReflectionStub(svc.channel)
        req = reflection_pb2.ServerReflectionRequest(list_services="")
        with pytest.raises(grpc.RpcError) as err:
            list(stub.ServerReflectionInfo(iter([req])))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        svc.close()
        stop()


def test_every_route_and_method_is_in_the_access_table(services: dict[str, Svc]) -> None:
    """A new route or RPC must be declared; otherwise it would silently need admin."""
    open_paths = HEALTH_PATHS | DOCS_PATHS | {"/metrics"}
    for name, svc in services.items():
        for route in svc.runner.app.routes:
            if not isinstance(route, APIRoute) or route.path in open_paths:
                continue
            template = route.path.replace(":path}", "}")
            for method in route.methods:
                assert f"{method} {template}" in ACCESS[name], (name, method, route.path)
    for name, module in [
        ("critic", critic_pb2),
        ("generator", generator_pb2),
        ("trainer", trainer_pb2),
    ]:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                assert f"/{service.full_name}/{method.name}" in ACCESS[name], method.full_name


# -- the tokens file and `lift auth add` ------------------------------------------------


def test_lift_auth_add_prints_the_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    file = tmp_path / "sub" / "tokens.json"
    r = CliRunner().invoke(
        cli, ["auth", "add", "ci", "--scope", "judge", "--scope", "runs", "--file", str(file)]
    )
    assert r.exit_code == 0, r.output
    token = r.output.split()[-1]
    assert token.startswith("lift_") and len(token) >= 40
    text = file.read_text()
    assert token not in text and hash_token(token) in text
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    entry = json.loads(text)["tokens"][0]
    assert entry["name"] == "ci" and entry["scopes"] == ["judge", "runs"]
    caller = Authenticator(file).authenticate(token)
    assert caller is not None and caller.scopes == {Scope.JUDGE, Scope.RUNS}

    again = CliRunner().invoke(cli, ["auth", "add", "ci", "--scope", "admin", "--file", str(file)])
    assert again.exit_code == 2 and "--replace" in again.output
    replaced = CliRunner().invoke(
        cli, ["auth", "add", "ci", "--scope", "admin", "--file", str(file), "--replace"]
    )
    assert replaced.exit_code == 0
    assert Authenticator(file).authenticate(token) is None  # the old token is revoked
    bad = CliRunner().invoke(cli, ["auth", "add", "x", "--scope", "root", "--file", str(file)])
    assert bad.exit_code == 2 and "unknown scope" in bad.output


@pytest.mark.parametrize(
    ("content", "mode", "needle"),
    [
        ("{not json", 0o600, "malformed"),
        ('{"tokens": [{"name": "a", "scopes": ["root"], "hash": "x"}]}', 0o600, "malformed"),
        ('{"tokens": []}', 0o666, "writable by other users"),
    ],
)
def test_an_unusable_tokens_file_stops_start_up(
    tmp_path: Path, content: str, mode: int, needle: str
) -> None:
    file = tmp_path / "tokens.json"
    file.write_text(content)
    os.chmod(file, mode)
    with pytest.raises(AuthFileError, match=needle):
        build_critic(CriticSettings(grpc_port=0, http_port=0, auth_file=file))


def test_tokens_added_while_serving_work_within_seconds(
    services: dict[str, Svc], tokens: Tokens, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Authenticator, "RECHECK_S", 0.0)
    late = add_token(tokens.file, "late", [Scope.RUNS])
    assert services["trainer"].http.get("/v1/runs", headers=_bearer(late)).status_code == 200


def test_open_service_beyond_loopback_warns() -> None:
    # A handler on the logger itself: services started by earlier tests configure logging
    # (levels, propagation), which pytest's caplog would depend on.
    class Recorder(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    logger = logging.getLogger("lift.runner")
    previous = logger.level
    for host, warns in [("0.0.0.0", True), ("127.0.0.1", False)]:
        recorder = Recorder()
        logger.addHandler(recorder)
        logger.setLevel(logging.WARNING)
        loop = asyncio.new_event_loop()  # grpc.aio makes its server on the current loop
        asyncio.set_event_loop(loop)
        try:
            runner = build_critic(CriticSettings(host=host, grpc_port=0, http_port=0))
            loop.run_until_complete(runner.http.stop(grace_s=0))  # never started: free the port
        finally:
            logger.removeHandler(recorder)
            logger.setLevel(previous)
            asyncio.set_event_loop(None)
            loop.close()
        assert any("without a tokens file" in m for m in recorder.messages) == warns, host


# -- the trainer's own token ------------------------------------------------------------


class _RecordingGenerator(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def GetInfo(self, request: Any, context: grpc.ServicerContext) -> Any:
        self.seen.append(dict(context.invocation_metadata()).get("authorization"))
        return generator_pb2.GetInfoResponse(model_name="fake")


def test_the_trainer_sends_its_own_token_not_the_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = _RecordingGenerator()
    server = grpc.server(futures.ThreadPoolExecutor(2))
    generator_pb2_grpc.add_GeneratorServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        # The environment holds someone else's token: it must never be sent.
        monkeypatch.setenv("LIFT_TOKEN", "lift_callers_token")
        settings = TrainerSettings(data_dir=tmp_path, client_token="lift_trainer_own")
        endpoint = SimpleNamespace(
            address=f"127.0.0.1:{port}", timeout_s=10.0, retries=0, backoff_s=0.1, down_after_s=5
        )
        config = SimpleNamespace(
            mode="online",
            eval=SimpleNamespace(prompts=[]),
            generator=endpoint,
            critic=endpoint,
        )
        deps = RunManager(settings).deps_factory(config, threading.Event())  # type: ignore[arg-type]
        assert isinstance(deps, Services)
        deps.generator_info()
        deps.close()
        # Without a client token the trainer sends none (not LIFT_TOKEN).
        bare = Services(
            endpoint,
            endpoint,
            threading.Event(),
            client_credentials(  # type: ignore[arg-type]
                TrainerSettings(data_dir=tmp_path)
            ),
        )
        bare.generator_info()
        bare.close()
        # A token file (a mounted secret) works too.
        secret = tmp_path / "token"
        secret.write_text("lift_from_file\n")
        creds = client_credentials(TrainerSettings(data_dir=tmp_path, client_token_file=secret))
        assert creds.metadata == (("authorization", "Bearer lift_from_file"),)
    finally:
        server.stop(None)
    assert fake.seen == ["Bearer lift_trainer_own", None]


def test_clients_take_an_explicit_token_over_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIFT_TOKEN", "from-env")
    assert Credentials.from_env().metadata == (("authorization", "Bearer from-env"),)
    creds = Credentials.from_env().with_token("explicit")
    assert creds.metadata == (("authorization", "Bearer explicit"),)


# -- browser hygiene (the services run open here, as they do locally) -------------------


@pytest.fixture(scope="module")
def open_trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Svc]:
    svc, stop = _start(
        "trainer",
        build_trainer,
        TrainerSettings(
            grpc_port=0,
            http_port=0,
            log_level="WARNING",
            data_dir=tmp_path_factory.mktemp("open-trainer"),
        ),
    )
    yield svc
    svc.close()
    stop()


def _run_count(svc: Svc) -> int:
    return len(svc.http.get("/v1/runs").json()["runs"])


def test_a_json_run_config_sent_as_text_plain_is_refused(open_trainer: Svc) -> None:
    before = _run_count(open_trainer)
    r = open_trainer.http.post(
        "/v1/runs", content=b'{"name": "x"}', headers={"content-type": "text/plain"}
    )
    assert r.status_code == 415 and r.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert _run_count(open_trainer) == before


@pytest.mark.parametrize("service", ["critic", "generator", "trainer"])
def test_every_body_taking_post_refuses_text_plain(
    services: dict[str, Svc], tokens: Tokens, service: str
) -> None:
    svc = services[service]
    admin = _bearer(tokens.by_scope["admin"])
    body_routes = {"/v1/critiques", "/v1/scores", "/v1/generations", "/v1/adapters", "/v1/runs"}
    posts = [
        r.path
        for r in svc.runner.app.routes
        if isinstance(r, APIRoute) and "POST" in r.methods and r.path in body_routes
    ]
    assert posts
    for path in posts:
        r = svc.http.post(path, content=b"{}", headers={**admin, "content-type": "text/plain"})
        assert r.status_code == 415, (path, r.text)


@pytest.mark.parametrize("content_type", ["text/plain", None])
def test_a_cross_origin_page_cannot_start_or_cancel_runs(
    open_trainer: Svc, content_type: str | None
) -> None:
    before = _run_count(open_trainer)
    headers = {"origin": "https://evil.example"}
    if content_type:
        headers["content-type"] = content_type
    r = open_trainer.http.post("/v1/runs", content=b'{"name": "x"}', headers=headers)
    assert r.status_code == 403 and "cross-origin" in r.json()["error"]["message"]
    r = open_trainer.http.post("/v1/runs/run-x:cancel", headers=headers)
    assert r.status_code == 403
    assert _run_count(open_trainer) == before
    # The service's own pages (/docs "try it out") are same-origin and pass.
    same = {"origin": str(open_trainer.http.base_url).rstrip("/")}
    assert open_trainer.http.post("/v1/runs/run-x:cancel", headers=same).status_code == 404


def test_cors_is_off_without_an_allow_list(open_trainer: Svc) -> None:
    r = open_trainer.http.options(
        "/v1/runs",
        headers={
            "origin": "https://evil.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert "access-control-allow-origin" not in r.headers
    r = open_trainer.http.get("/v1/runs", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_allow_list_and_trusted_hosts(tmp_path: Path) -> None:
    svc, stop = _start(
        "trainer",
        build_trainer,
        TrainerSettings(
            grpc_port=0,
            http_port=0,
            log_level="WARNING",
            data_dir=tmp_path,
            cors_origins="https://ui.example",
            trusted_hosts="127.0.0.1, *.lift.example",
        ),
    )
    try:
        preflight = {"access-control-request-method": "POST"}
        r = svc.http.options("/v1/runs", headers={"origin": "https://ui.example", **preflight})
        assert r.headers["access-control-allow-origin"] == "https://ui.example"
        r = svc.http.options("/v1/runs", headers={"origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in r.headers
        # DNS rebinding: the page's own name in the Host header is not on the list.
        r = svc.http.get("/v1/runs", headers={"host": "evil.example"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_ARGUMENT"
        assert svc.http.get("/v1/runs", headers={"host": "a.lift.example:8082"}).status_code == 200
        assert svc.http.get("/v1/runs").status_code == 200  # Host 127.0.0.1:port
        assert svc.http.get("/healthz", headers={"host": "10.0.0.7:8082"}).status_code == 200
    finally:
        svc.close()
        stop()


def test_streaming_rpcs_are_refused_before_they_run(
    services: dict[str, Svc], tokens: Tokens, mp4s: dict[str, bytes]
) -> None:
    """Client-streaming (CritiqueUpload) and server-streaming (WatchRun) calls are checked too."""
    critic = critic_pb2_grpc.CriticServiceStub(services["critic"].channel)
    mp4 = mp4s["clean"]

    def upload() -> Iterator[critic_pb2.CritiqueUploadRequest]:
        header = critic_pb2.CritiqueUploadHeader(prompt="a ball", total_bytes=len(mp4))
        yield critic_pb2.CritiqueUploadRequest(header=header)
        yield critic_pb2.CritiqueUploadRequest(chunk=mp4)

    with pytest.raises(grpc.RpcError) as err:
        critic.CritiqueUpload(upload(), timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    md = tuple(_bearer(tokens.by_scope["judge"]).items())
    assert critic.CritiqueUpload(upload(), metadata=md, timeout=60).critique.dimensions

    trainer = trainer_pb2_grpc.TrainerServiceStub(services["trainer"].channel)
    md = tuple(_bearer(tokens.by_scope["judge"]).items())
    with pytest.raises(grpc.RpcError) as err:
        list(trainer.WatchRun(trainer_pb2.WatchRunRequest(id="run-x"), metadata=md, timeout=30))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_loopback_service_refuses_rebinding_hosts_by_default(open_trainer: Svc) -> None:
    # Bound to 127.0.0.1 with no trusted_hosts: only loopback names are accepted, so a page
    # on a rebinding domain (Host: evil.example, same origin to the browser) is refused.
    r = open_trainer.http.post(
        "/v1/runs",
        json={"prompts": ["x"]},
        headers={"host": "evil.example:8082", "origin": "http://evil.example:8082"},
    )
    assert r.status_code == 400 and "Host" in r.json()["error"]["message"], r.text
    assert open_trainer.http.get("/v1/runs", headers={"host": "localhost:8082"}).status_code == 200
    assert open_trainer.http.get("/v1/runs", headers={"host": "[::1]:8082"}).status_code == 200
    assert open_trainer.http.get("/v1/runs").status_code == 200  # Host 127.0.0.1:port
