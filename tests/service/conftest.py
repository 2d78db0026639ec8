"""In-process services (gRPC + HTTP on ephemeral ports), each in a background event loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from lift.critic.v1 import critic_pb2_grpc
from lift.runner import ServiceRunner, start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings


@dataclass
class RunningCritic:
    runner: ServiceRunner
    grpc_target: str
    http_url: str
    video_root: Path


@pytest.fixture(scope="session")
def video_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


def start_critic(**overrides: object) -> tuple[RunningCritic, Callable[[], None]]:
    """Start a critic in its own thread; return it and a stop function."""
    settings = CriticSettings(grpc_port=0, http_port=0, log_level="WARNING", **overrides)
    runner, stop = start_in_thread(build_critic, settings)
    root = Path(str(overrides.get("video_root", ".")))
    return (
        RunningCritic(
            runner, f"127.0.0.1:{runner.grpc_port}", f"http://127.0.0.1:{runner.http_port}", root
        ),
        stop,
    )


@pytest.fixture(scope="session")
def critic(video_root: Path) -> Iterator[RunningCritic]:
    running, stop = start_critic(video_root=video_root, workers=2, max_queue=8)
    yield running
    stop()


@pytest.fixture(scope="session")
def stub(critic: RunningCritic) -> Iterator[critic_pb2_grpc.CriticServiceStub]:
    channel = grpc.insecure_channel(
        critic.grpc_target, options=[("grpc.max_send_message_length", 100 * 1024 * 1024)]
    )
    yield critic_pb2_grpc.CriticServiceStub(channel)
    channel.close()


@pytest.fixture(scope="session")
def http(critic: RunningCritic) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=critic.http_url, timeout=60) as client:
        yield client
