"""Assemble the generator process: engine, worker pool, gRPC server and HTTP app."""

from __future__ import annotations

from lift.runner import ServiceRunner, assemble_service
from lift.v1 import generator_pb2_grpc
from services.generator.engine import GeneratorEngine
from services.generator.grpc_service import SERVICE_NAME, GeneratorServicer
from services.generator.http_app import create_app
from services.generator.settings import GeneratorSettings


def build_generator(settings: GeneratorSettings) -> ServiceRunner:
    """A runner for the generator (call ``await runner.start()`` or ``run_forever()``)."""
    return assemble_service(
        "generator",
        settings,
        GeneratorEngine(settings),
        generator_pb2_grpc.add_GeneratorServiceServicer_to_server,
        GeneratorServicer,
        SERVICE_NAME,
        create_app,
    )
