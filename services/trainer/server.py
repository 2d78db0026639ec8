"""Assemble the trainer process: run manager, gRPC server and HTTP app."""

from __future__ import annotations

from lift.runner import ServiceRunner, assemble_service
from lift.services.trainer.grpc_service import SERVICE_NAME, TrainerServicer
from lift.services.trainer.http_app import create_app
from lift.services.trainer.manager import RunManager
from lift.services.trainer.settings import TrainerSettings
from lift.trainer.v1 import trainer_pb2_grpc


def build_trainer(settings: TrainerSettings) -> ServiceRunner:
    """A runner for the trainer (call ``await runner.start()`` or ``run_forever()``)."""
    return assemble_service(
        "trainer",
        settings,
        RunManager(settings),
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server,
        TrainerServicer,
        SERVICE_NAME,
        create_app,
    )
