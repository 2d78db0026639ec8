"""The one client base: credentials reach the server, errors carry the status, deadlines apply."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from lift.client import (
    AsyncCriticClient,
    ClientError,
    Credentials,
    CriticClient,
    CriticError,
    GeneratorClient,
    GeneratorError,
    TrainerClient,
    TrainerError,
)
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.wire import duration


class _Critic(critic_pb2_grpc.CriticServiceServicer):
    """A critic that records the metadata of each call and answers GetInfo."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.release = threading.Event()

    def GetInfo(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        return critic_pb2.GetInfoResponse(max_video_bytes=5, max_duration=duration(2.5))

    def Score(self, request, context):
        self.release.wait(5)  # slower than the test's deadline
        return critic_pb2.ScoreResponse()


@pytest.fixture()
def fake_critic() -> Iterator[tuple[str, _Critic]]:
    servicer = _Critic()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    critic_pb2_grpc.add_CriticServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    servicer.release.set()
    server.stop(None)


def test_lift_token_is_sent_as_a_bearer_token(fake_critic, monkeypatch) -> None:
    target, servicer = fake_critic
    monkeypatch.setenv("LIFT_TOKEN", "s3cret")
    with CriticClient(target) as client:
        info = client.info()
    assert servicer.metadata[-1]["authorization"] == "Bearer s3cret"
    assert info["limits"]["max_video_bytes"] == 5 and info["limits"]["max_duration_s"] == 2.5

    async def main() -> None:
        async with AsyncCriticClient(target) as client:
            await client.info()

    asyncio.run(main())
    assert servicer.metadata[-1]["authorization"] == "Bearer s3cret"


def test_explicit_credentials_replace_the_environment(fake_critic, monkeypatch) -> None:
    target, servicer = fake_critic
    monkeypatch.setenv("LIFT_TOKEN", "from-env")
    creds = Credentials(metadata=(("x-api-key", "k1"),))
    with CriticClient(target, credentials=creds) as client:
        client.info()
    assert servicer.metadata[-1]["x-api-key"] == "k1"
    assert "authorization" not in servicer.metadata[-1]
    monkeypatch.delenv("LIFT_TOKEN")
    with CriticClient(target) as client:
        client.info()
    assert "authorization" not in servicer.metadata[-1]
    # Over HTTP the same metadata are headers.
    with CriticClient("http://127.0.0.1:1", credentials=creds) as client:
        assert client._http is not None and client._http.headers["x-api-key"] == "k1"


def test_a_deadline_is_a_client_error_with_its_status(fake_critic) -> None:
    target, _ = fake_critic
    with CriticClient(target, timeout_s=0.2) as client, pytest.raises(CriticError) as err:
        client.score([(b"x", "p")])
    assert err.value.status == grpc.StatusCode.DEADLINE_EXCEEDED
    assert err.value.code == "DEADLINE_EXCEEDED" and isinstance(err.value, ClientError)


def test_every_client_raises_its_own_error_on_one_base() -> None:
    # Nothing listens on port 1: the first call fails UNAVAILABLE.
    for client_class, error in [(GeneratorClient, GeneratorError), (TrainerClient, TrainerError)]:
        with client_class("127.0.0.1:1", timeout_s=2) as client, pytest.raises(error) as err:
            client.info() if client_class is GeneratorClient else client.get_run("run-x")
        assert err.value.status == grpc.StatusCode.UNAVAILABLE
    assert CriticError("404", "not found").status is None  # an HTTP status, not a gRPC one
