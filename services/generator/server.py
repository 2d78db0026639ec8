"""Assemble the generator process: engine, worker pool, gRPC server and HTTP app."""

from __future__ import annotations

from lift.grpc_server import build_server
from lift.runner import ServiceRunner
from lift.serving import WorkLimiter
from lift.v1 import generator_pb2_grpc
from services.generator.engine import GeneratorEngine
from services.generator.grpc_service import SERVICE_NAME, GeneratorServicer
from services.generator.http_app import create_app
from services.generator.settings import GeneratorSettings


def build_generator(settings: GeneratorSettings) -> ServiceRunner:
    """A runner for the generator (call ``await runner.start()`` or ``run_forever()``)."""
    engine = GeneratorEngine(settings)
    limiter = WorkLimiter(settings.workers, settings.max_queue, service="generator")
    server, health = build_server(
        "generator",
        [
            (
                generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
                GeneratorServicer(engine, limiter),
                SERVICE_NAME,
            )
        ],
        settings.max_message_bytes,
    )
    return ServiceRunner(
        "generator",
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
