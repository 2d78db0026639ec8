"""Client for the generator over gRPC.

from lift.client import GeneratorClient
from lift.generation import GenerationRequest

with GeneratorClient("localhost:50052") as gen:
    video = gen.generate(GenerationRequest("a dog runs on the beach", seed=7),
                         on_progress=lambda p: print(p.stage, p.step, p.total_steps))
    Path("dog.mp4").write_bytes(video.data)
    gen.load_adapter("run-1/s100", "out/adapter")   # a peft adapter directory; serves on request
    gen.promote("run-1/s100")                       # now the default for every caller
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from lift.clients.base import ClientError, Credentials, GrpcClient
from lift.generation import (
    AdapterFiles,
    GeneratedVideo,
    GenerationRequest,
    Progress,
    progress_from_proto,
    request_to_proto,
    video_from_proto,
)
from lift.generator.v1 import generator_pb2, generator_pb2_grpc
from lift.uris import is_uri
from lift.wire import message_to_data, seconds, unix_s


class GeneratorError(ClientError):
    """The generator refused a request; ``code`` is the gRPC status name."""


class AdapterNotFound(GeneratorError):
    """Generate named an adapter version the generator does not hold (status NOT_FOUND).

    The generator restarted or evicted it; its owner can load it again.
    """


class GeneratorClient(GrpcClient):
    """Blocking gRPC client. ``server`` is "host:port" or "grpc://host:port"."""

    error = GeneratorError
    max_message_bytes = 256 * 1024 * 1024

    def __init__(
        self,
        server: str,
        timeout_s: float | None = 600.0,
        credentials: Credentials | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(
            server, generator_pb2_grpc.GeneratorServiceStub, timeout_s, credentials, token
        )

    def generate(
        self,
        request: GenerationRequest,
        on_progress: Callable[[Progress], None] | None = None,
        timeout_s: float | None = None,
    ) -> GeneratedVideo:
        """Generate one video; ``on_progress`` sees every progress event first.

        Raises :class:`AdapterNotFound` when the request names a version the
        generator does not hold, :class:`GeneratorError` for other refusals.
        """
        call = self._stream("Generate", request_to_proto(request), timeout_s or None)
        video = None
        try:
            # Read the stream to its end (the status follows the video): returning on the
            # video would cancel the call while the server is sending its status.
            for msg in call:
                if msg.WhichOneof("event") == "progress":
                    if on_progress is not None:
                        on_progress(progress_from_proto(msg.progress))
                elif video is None:
                    video = video_from_proto(msg.video)
            if video is not None:
                return video
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:  # type: ignore[attr-defined]
                raise AdapterNotFound.from_rpc(exc) from None
            raise GeneratorError.from_rpc(exc) from None
        except BaseException:
            call.cancel()  # e.g. Ctrl-C: stop the server's denoising too
            raise
        raise GeneratorError("INTERNAL", "the stream ended without a video")

    def load_adapter(
        self,
        version: str,
        adapter: str | Path | bytes,
        config_json: str | None = None,
        pin: bool = False,
    ) -> dict[str, Any]:
        """Install an adapter: a local peft directory, a file:// URI, or weights bytes.

        It serves requests that name ``version``; the default stays as it was (see
        :meth:`promote`). ``pin`` keeps it loaded however many versions follow.
        Returns the LoadAdapter response as a dict (``load_ms`` in milliseconds).
        """
        req = generator_pb2.LoadAdapterRequest(version=version, pin=pin)
        if isinstance(adapter, bytes):
            req.files.weights = adapter
            req.files.config_json = config_json or ""
        elif isinstance(adapter, str) and is_uri(adapter):
            req.uri = adapter
        else:
            files = AdapterFiles.from_dir(Path(adapter))
            req.files.weights = files.weights
            req.files.config_json = files.config_json or ""
        r = self._unary("LoadAdapter", req)
        data = message_to_data(r)
        del data["load_duration"]
        data["load_ms"] = seconds(r.load_duration) * 1000
        return data

    def promote(self, version: str) -> dict[str, Any]:
        """Make ``version`` ("base": no adapter) the default; ``{version, previous_version}``."""
        r = self._unary("PromoteAdapter", generator_pb2.PromoteAdapterRequest(version=version))
        return {"version": r.version, "previous_version": r.previous_version}

    def pin(self, version: str, pinned: bool = True) -> bool:
        """Pin (or unpin) a loaded version; returns whether it is pinned now."""
        r = self._unary(
            "PinAdapter", generator_pb2.PinAdapterRequest(version=version, pinned=pinned)
        )
        return bool(r.pinned)

    def info(self) -> dict[str, Any]:
        """Model, defaults, limits and adapters, as the JSON of GET /v1/info."""
        r = self._unary("GetInfo", generator_pb2.GetInfoRequest())
        data = message_to_data(r)
        data["adapters"] = [
            {
                "version": a.version,
                "modules": a.modules,
                "rank": a.rank,
                "loaded_at": unix_s(a.load_time),
                "pinned": a.pinned,
            }
            for a in r.adapters
        ]
        return data
