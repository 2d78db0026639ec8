"""One trainer, several generator and critic replicas: spread, publish to all, survive a death.

The loopback test runs two in-process generators and two critics. During an online
run one generator restarts (losing the adapter it was given: it is caught up) and
then dies, and one critic dies; the run finishes, and its steps, held-out rewards
and adapter weights equal those of a run with one generator and one critic.
The other tests drive the replica pool with fake clients and a fake DNS resolver.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from safetensors.numpy import load_file

from lift.client import ClientError, Credentials, GeneratorClient
from lift.clients.base import ClientBase
from lift.runner import start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings
from lift.services.generator.server import build_generator
from lift.services.generator.settings import GeneratorSettings
from lift.services.trainer import manager as manager_module
from lift.services.trainer.config import EndpointConfig, RunConfig, parse_run_config
from lift.services.trainer.manager import RunManager
from lift.services.trainer.remote import DependencyFailed, ReplicaPool
from lift.services.trainer.settings import TrainerSettings

pytestmark = pytest.mark.timeout(300)


# ---- the pool, with fake clients --------------------------------------------------------


class _Fake:
    """A client whose calls fail with UNAVAILABLE while ``dead``."""

    def __init__(self, address: str, authority: str | None = None) -> None:
        self.address = address
        self.authority = authority
        self.dead = False
        self.calls = 0

    def work(self, item: int) -> tuple[int, str]:
        if self.dead:
            raise ClientError("UNAVAILABLE", f"connection refused ({self.address})")
        self.calls += 1
        time.sleep(0.01)  # long enough for the calls to overlap
        return item * item, self.address

    def close(self) -> None:
        pass


class _Dns:
    """getaddrinfo over a table that a test can change."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups = 0

    def __call__(self, host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        self.lookups += 1
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)) for ip in self.table[host]]


def _pool(endpoint: EndpointConfig, dns: _Dns | None = None) -> tuple[ReplicaPool[Any], dict]:
    clients: dict[str, _Fake] = {}

    def connect(address: str, authority: str | None = None) -> _Fake:
        clients[address] = _Fake(address, authority)
        return clients[address]

    return ReplicaPool("generator", endpoint, threading.Event(), connect, dns), clients


def _endpoint(**kw: Any) -> EndpointConfig:
    return EndpointConfig(
        **{"retries": 1, "backoff_s": 0.01, "down_after_s": 5, "retry_down_after_s": 60, **kw}
    )


def test_a_headless_name_is_every_address_it_resolves_to_and_work_keeps_its_order() -> None:
    dns = _Dns({"gen.headless": ["10.0.0.2", "10.0.0.1"], "localhost": ["127.0.0.1", "::1"]})
    pool, clients = _pool(_endpoint(address="gen.headless:50052", resolve=True), dns)
    assert sorted(clients) == ["10.0.0.1:50052", "10.0.0.2:50052"]
    # Dialled by IP, but TLS checks the certificate of the name.
    assert {c.authority for c in clients.values()} == {"gen.headless"}
    out = pool.map("Work", lambda r, i: r.client.work(i), list(range(12)))
    assert [v for v, _ in out] == [i * i for i in range(12)]  # the caller's order
    assert all(c.calls >= 3 for c in clients.values())  # both replicas served
    # Loopback spellings of one name are one local server, not two replicas.
    _, local_clients = _pool(_endpoint(address="localhost:7", resolve=True), dns)
    assert list(local_clients) == ["localhost:7"]
    # Without resolve a name is one address (gRPC's own resolver dials it).
    _, plain_clients = _pool(_endpoint(address="gen.headless:50052"), dns)
    assert list(plain_clients) == ["gen.headless:50052"]
    assert plain_clients["gen.headless:50052"].authority is None


def test_a_resolved_replica_over_tls_verifies_the_names_certificate() -> None:
    opened: list[tuple[str, str, list[tuple[str, Any]]]] = []

    class Api:
        def secure_channel(self, target: str, creds: Any, options: list[Any]) -> str:
            opened.append(("secure", target, options))
            return "channel"

        def insecure_channel(self, target: str, options: list[Any]) -> str:
            opened.append(("plain", target, options))
            return "plain channel"

    class Client(ClientBase):
        max_message_bytes = 9

    tls = Credentials.create(None, tls=True)
    client = Client(None, tls.with_tls_name("gen.headless"))
    assert client._open_channel(Api(), "10.0.0.1:50052") == "channel"
    kind, target, options = opened[0]
    assert (kind, target) == ("secure", "10.0.0.1:50052")
    assert ("grpc.ssl_target_name_override", "gen.headless") in options
    assert ("grpc.max_send_message_length", 9) in options
    # Plaintext, or no name: the client's own channel, no name override.
    plain = Client(None, Credentials().with_tls_name("gen.headless"))
    assert plain._open_channel(Api(), "10.0.0.1:50052") == "plain channel"
    assert Client(None, tls.with_tls_name(None))._open_channel(Api(), "10.0.0.1:50052") == "channel"
    for _, _, opts in opened[1:]:
        assert all(k != "grpc.ssl_target_name_override" for k, _ in opts)


def test_work_moves_off_a_dead_replica_and_a_new_address_is_picked_up() -> None:
    dns = _Dns({"gen.headless": ["10.0.0.1", "10.0.0.2"]})
    pool, clients = _pool(_endpoint(address="gen.headless:50052", resolve=True), dns)
    clients["10.0.0.2:50052"].dead = True
    looked_up = dns.lookups
    out = pool.map("Work", lambda r, i: r.client.work(i), list(range(8)))
    assert [a for _, a in out] == ["10.0.0.1:50052"] * 8  # every item, from the live one
    assert dns.lookups > looked_up  # a replica down: the name is looked up again
    # Both die; the name now points at a new pod: re-resolving finds it.
    clients["10.0.0.1:50052"].dead = True
    dns.table["gen.headless"] = ["10.0.0.3"]
    assert pool.call("Work", lambda r: r.client.work(3)) == (9, "10.0.0.3:50052")


def test_with_no_replica_left_the_reason_names_each_address_and_its_last_error() -> None:
    pool, clients = _pool(_endpoint(address="10.0.0.1:1", addresses=["10.0.0.2:1"]))
    for c in clients.values():
        c.dead = True
    with pytest.raises(DependencyFailed) as info:
        pool.call("Generate", lambda r: r.client.work(1))
    reason = str(info.value)
    assert reason.startswith("no generator replica is left for Generate")
    for address in ("10.0.0.1:1", "10.0.0.2:1"):
        assert f"{address} Generate failed 2 times" in reason
        assert f"connection refused ({address})" in reason
    # One replica keeps the one-server wording.
    single, one = _pool(_endpoint(address="10.0.0.9:1"))
    one["10.0.0.9:1"].dead = True
    with pytest.raises(DependencyFailed, match=r"generator \(10.0.0.9:1\) Generate failed 2 "):
        single.call("Generate", lambda r: r.client.work(1))


def test_a_run_config_takes_several_addresses_and_checks_each() -> None:
    cfg = parse_run_config(
        {
            "prompts": ["a dog"],
            "generator": {"address": "gen-0:50052", "addresses": ["gen-1:50052", "gen-0:50052"]},
            "critic": {"address": "critic:50051", "resolve": True},
        }
    )
    assert isinstance(cfg, RunConfig) and cfg.generator and cfg.critic
    assert cfg.generator.targets() == ["gen-0:50052", "gen-1:50052"]
    assert cfg.critic.resolve and cfg.critic.targets() == ["critic:50051"]
    m = RunManager(TrainerSettings(allowed_endpoints=["gen-0:50052", "critic:50051"]))
    with pytest.raises(Exception, match=r"generator\.addresses\.0: gen-1:50052 is not an endpoint"):
        m.check_access(cfg)


# ---- loopback: two generators, two critics, one of each dies mid-run ---------------------


def _ready(http_port: int) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the generator did not become ready"
        time.sleep(0.1)


def _generator(model: Path, port: int = 0) -> tuple[Any, Any]:
    runner, stop = start_in_thread(
        build_generator,
        GeneratorSettings(grpc_port=port, http_port=0, model=model, log_level="WARNING"),
    )
    _ready(runner.http_port)
    return runner, stop


def _critic() -> tuple[Any, Any]:
    # Two videos per Score call: a step's four videos are scored on both critics at once.
    settings = CriticSettings(grpc_port=0, http_port=0, log_level="WARNING", max_batch_items=2)
    return start_in_thread(build_critic, settings)


def _versions(address: str) -> list[str]:
    with GeneratorClient(address, timeout_s=10) as client:
        return [str(a["version"]) for a in client.info()["adapters"]]


class _Chaos:
    """The run's real services; after the 1st publish generator 2 restarts (it loses the
    adapter) and critic 2 dies; after the 2nd publish generator 2 dies."""

    def __init__(self, inner: Any, on_publish: Any) -> None:
        self.inner, self.on_publish, self.published = inner, on_publish, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def publish(self, version: str, files: Any) -> None:
        self.inner.publish(version, files)
        self.published += 1
        self.on_publish(self, self.published, version)


def _run(tmp: Path, model: Path, real: Path, gen: dict, critic: dict, deps: Any = None) -> dict:
    cfg = {
        "model": str(model),
        "generator": gen,
        "critic": critic,
        "prompts": ["a dog runs", "a ball rolls", "a red car turns"],
        "real_data": {"path": str(real)},
        "sampling": {"num_frames": 9, "height": 32, "width": 32, "num_inference_steps": 3},
        "optimizer": {"lr": 1e-3},
        "steps": 3,
        "batch_size": 2,
        "videos_per_prompt": 2,  # 4 videos a step: both generators get some
        "publish_every": 1,
        "checkpoint_every": 3,
        "seed": 7,
        "eval": {"prompts": ["a cat", "a bird"], "seeds": [0, 1]},
    }
    settings = TrainerSettings(
        data_dir=tmp / "data", data_roots=[model.parent, real.parent], allowed_endpoints=["*"]
    )
    manager = RunManager(settings, deps_factory=deps)
    manager.load()
    try:
        run = manager.start_run(json.dumps(cfg))
        deadline = time.monotonic() + 240
        while not manager.get_run(run.id).state.final and time.monotonic() < deadline:
            time.sleep(0.1)
        final = manager.get_run(run.id)
        events = manager.events(run.id)
    finally:
        manager.close()
    assert final.state.value == "succeeded", final.reason
    result = dict(final.result or {})
    weights = load_file(str(Path(result.pop("adapter_dir")) / "adapter_model.safetensors"))
    result.pop("adapter_version")
    steps = [
        {k: v for k, v in e.data.items() if k not in ("seconds", "samples_per_second")}
        for e in events
        if e.kind == "step"
    ]
    return {"result": result, "steps": steps, "weights": weights, "events": events, "id": run.id}


def _served(deps: Any, dependency: str, address: str, what: str) -> int:
    """Successful ``what`` calls of one replica so far (and the metric agrees it served)."""
    pool = getattr(deps.inner, dependency)
    (replica,) = [r for r in pool.replicas() if r.address == address]
    count = REGISTRY.get_sample_value(
        "lift_trainer_dependency_seconds_count", {"dependency": dependency, "replica": address}
    )
    assert count and count >= replica.succeeded[what]
    return int(replica.succeeded[what])


def test_a_run_over_two_replicas_survives_a_restart_and_deaths_and_equals_one_replica(
    tmp_path: Path, tiny_generator_dir: Path, offline_dataset: Path
) -> None:
    real = offline_dataset / "real"
    g1, stop_g1 = _generator(tiny_generator_dir)
    g2, stop_g2 = _generator(tiny_generator_dir)
    c1, stop_c1 = _critic()
    c2, stop_c2 = _critic()
    gen1, gen2 = f"127.0.0.1:{g1.grpc_port}", f"127.0.0.1:{g2.grpc_port}"
    crit1, crit2 = f"127.0.0.1:{c1.grpc_port}", f"127.0.0.1:{c2.grpc_port}"
    policy = {"timeout_s": 60, "retries": 1, "backoff_s": 0.1, "down_after_s": 5,
              "retry_down_after_s": 600}  # fmt: skip
    stops = {"g2": stop_g2, "c2": stop_c2}
    seen: dict[str, Any] = {}

    def on_publish(deps: Any, n: int, version: str) -> None:
        if n == 1:
            # Every replica holds a version before any is asked for it.
            seen["first"] = version, _versions(gen1), _versions(gen2)
            seen["served"] = [_served(deps, "generator", a, "Generate") for a in (gen1, gen2)] + [
                _served(deps, "critic", a, "Score") for a in (crit1, crit2)
            ]
            stops.pop("g2")()  # generator 2 restarts on its port: it lost the version
            _, stops["g2"] = _generator(tiny_generator_dir, port=g2.grpc_port)
            stops.pop("c2")()  # critic 2 dies
        elif n == 2:
            seen["second"] = version, _versions(gen2)  # caught up with version 1 before
            stops.pop("g2")()  # generator 2 dies

    def chaos(config: Any, stop: threading.Event) -> Any:
        return _Chaos(manager_module.default_deps(config, stop), on_publish)

    try:
        many = _run(
            tmp_path / "many",
            tiny_generator_dir,
            real,
            {"address": gen1, "addresses": [gen2], **policy},
            {"address": crit1, "addresses": [crit2], **policy},
            chaos,
        )
        one = _run(
            tmp_path / "one",
            tiny_generator_dir,
            real,
            {"address": gen1, **policy},
            {"address": crit1, **policy},
        )
    finally:
        for stop in (stop_g1, stop_c1, *stops.values()):
            stop()
    first, on1, on2 = seen["first"]
    assert first in on1 and first in on2  # published to both before use
    assert all(n > 0 for n in seen["served"]), seen["served"]  # every replica had work
    _, restarted = seen["second"]
    assert first in restarted  # the restarted replica was caught up with the same label
    publishes = [e for e in many["events"] if e.kind == "publish"]
    assert len(publishes) == 3  # no re-labelled publish: the catch-up reused the version
    # The result does not depend on which replica served what.
    assert many["steps"] == one["steps"]
    assert many["result"] == one["result"]
    assert many["weights"].keys() == one["weights"].keys()
    for key, value in many["weights"].items():
        assert (value == one["weights"][key]).all(), key
