"""Assemble the generator process: engine, worker pool, gRPC server and HTTP app."""

from __future__ import annotations

from lift.generator.v1 import generator_pb2_grpc
from lift.runner import ServiceRunner, assemble_service
from lift.services.generator.engine import GeneratorEngine
from lift.services.generator.grpc_service import SERVICE_NAME, GeneratorServicer
from lift.services.generator.http_app import create_app
from lift.services.generator.settings import GeneratorSettings


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
