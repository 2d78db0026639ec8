"""gRPC front of the trainer: translate lift.v1 messages, delegate to the run manager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from lift.runs import event_to_proto
from lift.services.trainer.manager import RunManager
from lift.services.trainer.protocol import run_to_proto, state_from_proto
from lift.serving import WorkLimiter
from lift.v1 import trainer_pb2, trainer_pb2_grpc

SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    """lift.v1.TrainerService on top of a :class:`RunManager`."""

    def __init__(self, manager: RunManager, limiter: WorkLimiter) -> None:
        self.manager = manager
        self.limiter = limiter

    async def StartRun(
        self, request: trainer_pb2.StartRunRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.StartRunResponse:
        run = await asyncio.to_thread(self.manager.start_run, request.config)
        return trainer_pb2.StartRunResponse(run=run_to_proto(run))

    async def GetRun(
        self, request: trainer_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.GetRunResponse:
        run = await asyncio.to_thread(self.manager.get_run, request.id)
        return trainer_pb2.GetRunResponse(run=run_to_proto(run))

    async def ListRuns(
        self, request: trainer_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.ListRunsResponse:
        runs = await asyncio.to_thread(
            self.manager.list_runs, state_from_proto(request.state), request.limit or 100
        )
        return trainer_pb2.ListRunsResponse(runs=[run_to_proto(r) for r in runs])

    async def CancelRun(
        self, request: trainer_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> trainer_pb2.CancelRunResponse:
        run = await asyncio.to_thread(self.manager.cancel_run, request.id)
        return trainer_pb2.CancelRunResponse(run=run_to_proto(run))

    async def WatchRun(
        self, request: trainer_pb2.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[trainer_pb2.WatchRunResponse]:
        async for e in self.manager.follow(request.id, request.after_seq):
            yield trainer_pb2.WatchRunResponse(event=event_to_proto(e))
