"""gRPC front of the critic: translate lift.critic.v1 messages, delegate to the engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import comparison_to_proto, dimension_to_proto, to_proto
from lift.errors import InvalidInput, PayloadTooLarge, RequestTimeout
from lift.services.critic.engine import CriticEngine, VideoSource
from lift.serving import Deadline, WorkLimiter
from lift.wire import duration

SERVICE_NAME = critic_pb2.DESCRIPTOR.services_by_name["CriticService"].full_name


def _source(msg: common_pb2.VideoSource) -> VideoSource:
    which = msg.WhichOneof("source")
    if which == "data":
        return VideoSource(data=msg.data)
    if which == "uri":
        return VideoSource(uri=msg.uri)
    return VideoSource()


def _deadline(context: grpc.aio.ServicerContext) -> Deadline:
    return Deadline(context.time_remaining())


class CriticServicer(critic_pb2_grpc.CriticServiceServicer):
    """lift.critic.v1.CriticService on top of a :class:`CriticEngine`."""

    def __init__(self, engine: CriticEngine, limiter: WorkLimiter) -> None:
        self.engine = engine
        self.limiter = limiter

    async def Critique(
        self, request: critic_pb2.CritiqueRequest, context: grpc.aio.ServicerContext
    ) -> critic_pb2.CritiqueResponse:
        source, prompt, deadline = _source(request.video), request.prompt, _deadline(context)
        source = await self.engine.fetch(source, deadline)  # before taking a worker
        c = await self.limiter.run(lambda d: self.engine.critique(source, prompt, d), deadline)
        return critic_pb2.CritiqueResponse(critique=to_proto(c))

    async def CritiqueUpload(
        self,
        request_iterator: AsyncIterator[critic_pb2.CritiqueUploadRequest],
        context: grpc.aio.ServicerContext,
    ) -> critic_pb2.CritiqueUploadResponse:
        limit = self.engine.settings.max_video_bytes
        chunks: list[bytes] = []
        try:
            # A client trickling its chunks is cut off like a slow HTTP body.
            async with asyncio.timeout(self.engine.settings.body_timeout_s):
                header = await self._receive_upload(request_iterator, chunks, limit)
        except TimeoutError:
            raise RequestTimeout(
                f"the upload did not arrive within {self.engine.settings.body_timeout_s:g} s; "
                "send it faster"
            ) from None
        source, prompt = VideoSource(data=b"".join(chunks)), header.prompt
        c = await self.limiter.run(
            lambda d: self.engine.critique(source, prompt, d), _deadline(context)
        )
        return critic_pb2.CritiqueUploadResponse(critique=to_proto(c))

    @staticmethod
    async def _receive_upload(
        request_iterator: AsyncIterator[critic_pb2.CritiqueUploadRequest],
        chunks: list[bytes],
        limit: int,
    ) -> critic_pb2.CritiqueUploadHeader:
        """Read an upload's header and chunks (into ``chunks``), capped at ``limit`` bytes."""
        header: critic_pb2.CritiqueUploadHeader | None = None
        total = 0
        async for msg in request_iterator:
            part = msg.WhichOneof("part")
            if part == "header":
                if header is not None:
                    raise InvalidInput("the upload sent its header twice; send it once, first")
                header = msg.header
                if header.total_bytes > limit:
                    raise PayloadTooLarge(
                        f"the upload announces {header.total_bytes} bytes; the limit is {limit}"
                    )
            elif part == "chunk":
                if header is None:
                    raise InvalidInput("the first message of an upload must be the header")
                total += len(msg.chunk)
                if total > limit:
                    raise PayloadTooLarge(f"the upload exceeds the {limit}-byte video limit")
                chunks.append(msg.chunk)
            else:
                raise InvalidInput("an upload message must set either header or chunk")
        if header is None:
            raise InvalidInput("the upload was empty: send a header, then the video in chunks")
        return header

    async def Score(
        self, request: critic_pb2.ScoreRequest, context: grpc.aio.ServicerContext
    ) -> critic_pb2.ScoreResponse:
        deadline = _deadline(context)
        fetched = await self.engine.fetch_all([_source(i.video) for i in request.items], deadline)
        items = [(s, i.prompt) for s, i in zip(fetched, request.items, strict=True)]
        outcomes = await self.limiter.run(lambda d: self.engine.score(items, d), deadline)
        response = critic_pb2.ScoreResponse()
        for o in outcomes:
            if o.critique is not None:
                response.results.add(critique=to_proto(o.critique))
            else:
                assert o.error is not None
                response.results.add(
                    error=critic_pb2.ItemError(code=o.error.code_name, message=o.error.message)
                )
        return response

    async def Compare(
        self, request: critic_pb2.CompareRequest, context: grpc.aio.ServicerContext
    ) -> critic_pb2.CompareResponse:
        deadline = _deadline(context)
        if not request.HasField("a") or not request.HasField("b"):
            missing = " and ".join(f for f in ("a", "b") if not request.HasField(f))
            raise InvalidInput(f"no video {missing}: set both a and b (bytes or a URI each)")
        a, b = await self.engine.fetch_all([_source(request.a), _source(request.b)], deadline)
        prompt = request.prompt
        c = await self.limiter.run(lambda d: self.engine.compare(prompt, a, b, d), deadline)
        return critic_pb2.CompareResponse(comparison=comparison_to_proto(c))

    async def GetInfo(
        self, request: critic_pb2.GetInfoRequest, context: grpc.aio.ServicerContext
    ) -> critic_pb2.GetInfoResponse:
        info = self.engine.info()
        s = info.settings
        return critic_pb2.GetInfoResponse(
            model=common_pb2.ModelInfo(
                backend=info.model.backend, name=info.model.name, version=info.model.version
            ),
            assessed_dimensions=[dimension_to_proto(d) for d in info.assessed],  # type: ignore[misc]
            reward_map=common_pb2.LabelProbabilities(
                good=info.reward_map.good, normal=info.reward_map.normal, bad=info.reward_map.bad
            ),
            max_video_bytes=s.max_video_bytes,
            max_duration=duration(s.max_duration_s),
            max_frames=s.max_frames,
            max_side_px=s.max_side_px,
            max_prompt_chars=s.max_prompt_chars,
            max_batch_items=s.max_batch_items,
            suite_version=info.suite_version,
            protocol=info.protocol,
            score_semantics=info.score_semantics,
            frame_sampling=critic_pb2.FrameSampling(
                frames=info.sampling_frames, mode=info.sampling_mode
            ),
        )
