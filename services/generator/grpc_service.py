"""gRPC front of the generator: translate lift.generator.v1 messages, delegate to the engine."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
from google.protobuf import json_format

from lift.errors import InvalidInput, LiftError
from lift.generation import (
    AdapterFiles,
    Progress,
    progress_to_proto,
    request_from_proto,
    video_to_proto,
)
from lift.generator.v1 import generator_pb2, generator_pb2_grpc
from lift.services.generator.engine import GeneratorEngine
from lift.serving import Deadline, WorkLimiter
from lift.wire import duration, timestamp

SERVICE_NAME = generator_pb2.DESCRIPTOR.services_by_name["GeneratorService"].full_name


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    """lift.generator.v1.GeneratorService on top of a :class:`GeneratorEngine`."""

    def __init__(self, engine: GeneratorEngine, limiter: WorkLimiter) -> None:
        self.engine = engine
        self.limiter = limiter

    async def Generate(
        self, request: generator_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[generator_pb2.GenerateResponse]:
        # Bad input is refused before queueing, so a full queue never hides it.
        req = self.engine.resolve(request_from_proto(request))
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Progress] = asyncio.Queue()

        def on_progress(p: Progress) -> None:
            loop.call_soon_threadsafe(events.put_nowait, p)

        # The version it names stays loaded while it waits in the queue and runs.
        with self.engine.hold(req.adapter_version):
            work = asyncio.ensure_future(
                self.limiter.run(
                    lambda d: self.engine.generate(req, d, on_progress),
                    Deadline(context.time_remaining()),
                )
            )
            nxt: asyncio.Future[Progress] | None = None
            try:
                while not work.done():
                    nxt = asyncio.ensure_future(events.get())
                    await asyncio.wait({nxt, work}, return_when=asyncio.FIRST_COMPLETED)
                    if nxt.done():
                        yield generator_pb2.GenerateResponse(
                            progress=progress_to_proto(nxt.result())
                        )
                    else:
                        nxt.cancel()
                while not events.empty():
                    p = events.get_nowait()
                    yield generator_pb2.GenerateResponse(progress=progress_to_proto(p))
                yield generator_pb2.GenerateResponse(video=video_to_proto(work.result()))
            finally:
                if nxt is not None and not nxt.done():
                    nxt.cancel()
                if not work.done():  # the caller left: stop denoising at the next step
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError, LiftError):
                        await work

    async def LoadAdapter(
        self, request: generator_pb2.LoadAdapterRequest, context: grpc.aio.ServicerContext
    ) -> generator_pb2.LoadAdapterResponse:
        which = request.WhichOneof("source")
        source: AdapterFiles | str
        if which == "uri":
            source = request.uri
        elif which == "files":
            source = AdapterFiles(request.files.weights, request.files.config_json or None)
        else:
            raise InvalidInput("set the adapter's source: uri or files")
        deadline = Deadline(context.time_remaining())
        r = await asyncio.to_thread(
            self.engine.load_adapter, request.version, source, deadline, request.pin
        )
        return generator_pb2.LoadAdapterResponse(
            version=r.version,
            previous_version=r.previous_version,
            modules=r.modules,
            rank=r.rank,
            load_duration=duration(r.load_ms / 1000),
            loaded_versions=r.loaded_versions,
            pinned=r.pinned,
            evicted_versions=r.evicted_versions,
        )

    async def PromoteAdapter(
        self, request: generator_pb2.PromoteAdapterRequest, context: grpc.aio.ServicerContext
    ) -> generator_pb2.PromoteAdapterResponse:
        r = self.engine.promote_adapter(request.version)
        return generator_pb2.PromoteAdapterResponse(
            version=r.version, previous_version=r.previous_version
        )

    async def PinAdapter(
        self, request: generator_pb2.PinAdapterRequest, context: grpc.aio.ServicerContext
    ) -> generator_pb2.PinAdapterResponse:
        r = self.engine.pin_adapter(request.version, request.pinned)
        return generator_pb2.PinAdapterResponse(version=r.version, pinned=r.pinned)

    async def GetInfo(
        self,
        request: generator_pb2.GetInfoRequest,
        context: grpc.aio.ServicerContext,
    ) -> generator_pb2.GetInfoResponse:
        info = self.engine.info()
        data = info.to_json()
        # The JSON keeps loaded_at (unix seconds); the message has a Timestamp.
        del data["adapters"]
        response = json_format.ParseDict(data, generator_pb2.GetInfoResponse())
        for a in info.adapters:
            response.adapters.add(
                version=a.version,
                modules=a.modules,
                rank=a.rank,
                load_time=timestamp(a.loaded_at),
                pinned=a.version in info.pinned,
            )
        return response
