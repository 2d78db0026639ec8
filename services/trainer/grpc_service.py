"""gRPC front of the trainer: translate lift.trainer.v1 messages, delegate to the run manager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from lift.runs import config_from_proto, event_to_proto
from lift.services.trainer.manager import RunManager
from lift.services.trainer.protocol import record_to_proto, state_name
from lift.serving import WorkLimiter
from lift.trainer.v1 import trainer_pb2, trainer_pb2_grpc

SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name
DEFAULT_PAGE_SIZE = 100


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    """lift.trainer.v1.TrainerService on top of a :class:`RunManager`."""

    def __init__(self, manager: RunManager, limiter: WorkLimiter) -> None:
        self.manager = manager
        self.limiter = limiter

    async def StartRun(
        self, request: trainer_pb2.StartRunRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.StartRunResponse:
        # Only the fields the caller set: the run-config schema fills in the defaults
        # and names any bad field, as it does for the YAML of POST /v1/runs.
        config = config_from_proto(request.config, set_only=True)
        run = await asyncio.to_thread(self.manager.start_run, config)
        return trainer_pb2.StartRunResponse(run=record_to_proto(run))

    async def GetRun(
        self, request: trainer_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.GetRunResponse:
        run = await asyncio.to_thread(self.manager.get_run, request.id)
        return trainer_pb2.GetRunResponse(run=record_to_proto(run))

    async def ListRuns(
        self, request: trainer_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.ListRunsResponse:
        page, token = await asyncio.to_thread(
            self.manager.list_page,
            state_name(request.state),
            request.page_size or DEFAULT_PAGE_SIZE,
            request.page_token,
        )
        return trainer_pb2.ListRunsResponse(
            runs=[record_to_proto(r) for r in page], next_page_token=token
        )

    async def CancelRun(
        self, request: trainer_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.CancelRunResponse:
        run = await asyncio.to_thread(self.manager.cancel_run, request.id)
        return trainer_pb2.CancelRunResponse(run=record_to_proto(run))

    async def WatchRun(
        self, request: trainer_pb2.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[trainer_pb2.WatchRunResponse]:
        async for e in self.manager.follow(request.id, request.after_seq):
            yield trainer_pb2.WatchRunResponse(event=event_to_proto(e))
