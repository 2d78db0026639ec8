"""Assemble the critic process: engine, worker pool, gRPC server and HTTP app."""

from __future__ import annotations

from lift.grpc_server import build_server
from lift.runner import ServiceRunner
from lift.serving import WorkLimiter
from lift.v1 import critic_pb2_grpc
from services.critic.backends import CriticBackend
from services.critic.engine import CriticEngine
from services.critic.grpc_service import SERVICE_NAME, CriticServicer
from services.critic.http_app import create_app
from services.critic.settings import CriticSettings


def build_critic(settings: CriticSettings, backend: CriticBackend | None = None) -> ServiceRunner:
    """A runner for the critic (call ``await runner.start()`` or ``run_forever()``)."""
    engine = CriticEngine(settings, backend)
    limiter = WorkLimiter(settings.workers, settings.max_queue, service="critic")
    server, health = build_server(
        "critic",
        [
            (
                critic_pb2_grpc.add_CriticServiceServicer_to_server,
                CriticServicer(engine, limiter),
                SERVICE_NAME,
            )
        ],
        settings.max_message_bytes,
    )
    return ServiceRunner(
        "critic",
        server,
        health,
        [SERVICE_NAME],
        create_app(engine, limiter),
        settings.host,
        settings.grpc_port,
        settings.http_port,
        engine.load,
        settings.log_level,
        close=engine.close,
    )
