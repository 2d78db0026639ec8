"""Assemble the critic process: engine, worker pool, gRPC server and HTTP app."""

from __future__ import annotations

from lift.critic.v1 import critic_pb2_grpc
from lift.runner import ServiceRunner, assemble_service
from lift.services.critic.backends import CriticBackend
from lift.services.critic.engine import CriticEngine
from lift.services.critic.grpc_service import SERVICE_NAME, CriticServicer
from lift.services.critic.http_app import create_app
from lift.services.critic.settings import CriticSettings


def build_critic(settings: CriticSettings, backend: CriticBackend | None = None) -> ServiceRunner:
    """A runner for the critic (call ``await runner.start()`` or ``run_forever()``)."""
    return assemble_service(
        "critic",
        settings,
        CriticEngine(settings, backend),
        critic_pb2_grpc.add_CriticServiceServicer_to_server,
        CriticServicer,
        SERVICE_NAME,
        create_app,
    )
