"""Python client for the generator over gRPC.

from lift.generator_client import GeneratorClient
from lift.generation import GenerationRequest

with GeneratorClient("localhost:50052") as gen:
    video = gen.generate(GenerationRequest("a dog runs on the beach", seed=7),
                         on_progress=lambda p: print(p.stage, p.step, p.total_steps))
    Path("dog.mp4").write_bytes(video.data)
    gen.load_adapter("run-1/step-100", "out/adapter")   # a peft adapter directory
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from lift.generation import (
    AdapterFiles,
    GeneratedVideo,
    GenerationRequest,
    Progress,
    progress_from_proto,
    request_to_proto,
    video_from_proto,
)
from lift.uris import is_uri
from lift.v1 import generator_pb2, generator_pb2_grpc

_MAX_MESSAGE = 256 * 1024 * 1024


class GeneratorError(Exception):
    """The generator refused a request; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _error(exc: grpc.RpcError) -> GeneratorError:
    return GeneratorError(exc.code().name, exc.details() or "")  # type: ignore[attr-defined]


class GeneratorClient:
    """Blocking gRPC client. ``server`` is "host:port" or "grpc://host:port"."""

    def __init__(self, server: str, timeout_s: float | None = 600.0) -> None:
        self.timeout_s = timeout_s
        self._channel = grpc.insecure_channel(
            server.removeprefix("grpc://"),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
            ],
        )
        self._stub = generator_pb2_grpc.GeneratorServiceStub(self._channel)

    def __enter__(self) -> GeneratorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def generate(
        self,
        request: GenerationRequest,
        on_progress: Callable[[Progress], None] | None = None,
        timeout_s: float | None = None,
    ) -> GeneratedVideo:
        """Generate one video; ``on_progress`` sees every progress event first."""
        call = self._stub.Generate(
            request_to_proto(request), timeout=timeout_s if timeout_s else self.timeout_s
        )
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
            raise _error(exc) from None
        except BaseException:
            call.cancel()  # e.g. Ctrl-C: stop the server's denoising too
            raise
        raise GeneratorError("INTERNAL", "the stream ended without a video")

    def load_adapter(
        self, version: str, adapter: str | Path | bytes, config_json: str | None = None
    ) -> dict[str, Any]:
        """Install an adapter: a local peft directory, a file:// URI, or weights bytes."""
        req = generator_pb2.LoadAdapterRequest(version=version)
        if isinstance(adapter, bytes):
            req.files.weights = adapter
            req.files.config_json = config_json or ""
        elif isinstance(adapter, str) and is_uri(adapter):
            req.uri = adapter
        else:
            files = AdapterFiles.from_dir(Path(adapter))
            req.files.weights = files.weights
            req.files.config_json = files.config_json or ""
        try:
            r = self._stub.LoadAdapter(req, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return _to_dict(r)

    def info(self) -> dict[str, Any]:
        """Model, defaults, limits and adapters, as a dict."""
        try:
            r = self._stub.GetInfo(
                generator_pb2.GeneratorServiceGetInfoRequest(), timeout=self.timeout_s
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None
        return _to_dict(r)


def _to_dict(msg: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
