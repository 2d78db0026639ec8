"""Python clients for the critic, sync and async, over gRPC (or HTTP for the sync one).

    from lift.client import CriticClient
    with CriticClient("localhost:50051") as critic:
        c = critic.critique("clip.mp4", prompt="a dog runs on the beach")
        print(c.reward, c.dimension("motion_smoothness").reasons)

A ``video`` argument is bytes, a local path (read and sent as bytes), or a URI
string with a scheme ("file:///...", "https://...") that the server reads.
Videos larger than ``upload_chunk_bytes`` go through the streaming upload.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import httpx

from lift.critique import Critique, from_json, from_proto
from lift.uris import is_uri
from lift.v1 import common_pb2, critic_pb2, critic_pb2_grpc

Video = bytes | str | Path
CHUNK = 2 * 1024 * 1024
_MAX_MESSAGE = 80 * 1024 * 1024


class CriticError(Exception):
    """The critic refused a request; ``code`` is the gRPC status name."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _is_uri(video: Video) -> bool:
    return isinstance(video, str) and is_uri(video)


def _load(video: Video) -> tuple[bytes | None, str | None]:
    if isinstance(video, bytes):
        return video, None
    if _is_uri(video):
        return None, str(video)
    return Path(video).read_bytes(), None


def _source(video: Video) -> common_pb2.VideoSource:
    data, uri = _load(video)
    return (
        common_pb2.VideoSource(data=data) if data is not None else common_pb2.VideoSource(uri=uri)
    )


def _upload_messages(
    data: bytes, prompt: str, chunk: int
) -> Iterator[critic_pb2.CritiqueUploadRequest]:
    header = critic_pb2.CritiqueUploadHeader(prompt=prompt, total_bytes=len(data))
    yield critic_pb2.CritiqueUploadRequest(header=header)
    for i in range(0, len(data), chunk):
        yield critic_pb2.CritiqueUploadRequest(chunk=data[i : i + chunk])


def _score_results(resp: critic_pb2.ScoreResponse) -> list[Critique | CriticError]:
    out: list[Critique | CriticError] = []
    for r in resp.results:
        if r.WhichOneof("outcome") == "critique":
            out.append(from_proto(r.critique))
        else:
            out.append(CriticError(r.error.code, r.error.message))
    return out


def _grpc_target(server: str) -> str:
    return server.removeprefix("grpc://")


def _options() -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", _MAX_MESSAGE),
        ("grpc.max_send_message_length", _MAX_MESSAGE),
    ]


class CriticClient:
    """Blocking client. ``server`` is "host:port" / "grpc://host:port", or "http(s)://host:port"."""

    def __init__(
        self, server: str, timeout_s: float = 120.0, upload_chunk_bytes: int = CHUNK
    ) -> None:
        self.timeout_s = timeout_s
        self.chunk = upload_chunk_bytes
        self._http: httpx.Client | None = None
        self._channel: grpc.Channel | None = None
        if server.startswith(("http://", "https://")):
            self._http = httpx.Client(base_url=server, timeout=timeout_s)
        else:
            self._channel = grpc.insecure_channel(_grpc_target(server), options=_options())
            self._stub = critic_pb2_grpc.CriticServiceStub(self._channel)

    def __enter__(self) -> CriticClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        if self._channel is not None:
            self._channel.close()
        if self._http is not None:
            self._http.close()

    def critique(self, video: Video, prompt: str) -> Critique:
        """Full critique of one video."""
        if self._http is not None:
            return from_json(self._http_call("POST", "/v1/critiques", video=video, prompt=prompt))
        data, _ = _load(video)
        try:
            if data is not None and len(data) > self.chunk:
                r = self._stub.CritiqueUpload(
                    _upload_messages(data, prompt, self.chunk), timeout=self.timeout_s
                )
            else:
                r = self._stub.Critique(
                    critic_pb2.CritiqueRequest(video=_source(video), prompt=prompt),
                    timeout=self.timeout_s,
                )
        except grpc.RpcError as exc:
            raise CriticError(exc.code().name, exc.details() or "") from None
        return from_proto(r.critique)

    def score(self, items: Sequence[tuple[Video, str]]) -> list[Critique | CriticError]:
        """Scores (no reasons) for a batch; failed items come back as CriticError."""
        if self._http is not None:
            body = {"items": [_json_item(v, p) for v, p in items]}
            results = self._http_call("POST", "/v1/scores", json=body)["results"]
            return [
                from_json(r["critique"])
                if "critique" in r
                else CriticError(r["error"]["code"], r["error"]["message"])
                for r in results
            ]
        req = critic_pb2.ScoreRequest(
            items=[critic_pb2.ScoreItem(video=_source(v), prompt=p) for v, p in items]
        )
        try:
            return _score_results(self._stub.Score(req, timeout=self.timeout_s))
        except grpc.RpcError as exc:
            raise CriticError(exc.code().name, exc.details() or "") from None

    def info(self) -> dict[str, Any]:
        """Backend, model and limits, as a dict."""
        if self._http is not None:
            return self._http_call("GET", "/v1/info")
        from google.protobuf.json_format import MessageToDict

        try:
            r = self._stub.GetInfo(critic_pb2.GetInfoRequest(), timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise CriticError(exc.code().name, exc.details() or "") from None
        return MessageToDict(r, preserving_proto_field_name=True)

    def _http_call(
        self, method: str, path: str, video: Video | None = None, prompt: str = "", json: Any = None
    ) -> Any:
        assert self._http is not None
        try:
            if video is not None and not _is_uri(video):
                data, _ = _load(video)
                r = self._http.request(
                    method, path, files={"video": ("video", data or b"")}, data={"prompt": prompt}
                )
            elif video is not None:
                r = self._http.request(method, path, json={"prompt": prompt, "video_uri": video})
            else:
                r = self._http.request(method, path, json=json)
        except httpx.HTTPError as exc:
            raise CriticError("UNAVAILABLE", f"could not reach the critic: {exc}") from None
        if r.status_code >= 400:
            try:
                err = r.json()["error"]
                raise CriticError(err["code"], err["message"])
            except (ValueError, KeyError, TypeError):
                raise CriticError(str(r.status_code), r.text[:500]) from None
        return r.json()


def _json_item(video: Video, prompt: str) -> dict[str, str]:
    data, uri = _load(video)
    if uri is not None:
        return {"prompt": prompt, "video_uri": uri}
    return {"prompt": prompt, "video_b64": base64.b64encode(data or b"").decode()}


class AsyncCriticClient:
    """asyncio client over gRPC: ``async with AsyncCriticClient("host:port") as c: ...``."""

    def __init__(
        self, server: str, timeout_s: float = 120.0, upload_chunk_bytes: int = CHUNK
    ) -> None:
        self.timeout_s = timeout_s
        self.chunk = upload_chunk_bytes
        self._channel = grpc.aio.insecure_channel(_grpc_target(server), options=_options())
        self._stub = critic_pb2_grpc.CriticServiceStub(self._channel)

    async def __aenter__(self) -> AsyncCriticClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close(None)

    async def critique(self, video: Video, prompt: str) -> Critique:
        """Full critique of one video."""
        data, _ = _load(video)
        try:
            if data is not None and len(data) > self.chunk:
                r = await self._stub.CritiqueUpload(
                    _upload_messages(data, prompt, self.chunk), timeout=self.timeout_s
                )
            else:
                r = await self._stub.Critique(
                    critic_pb2.CritiqueRequest(video=_source(video), prompt=prompt),
                    timeout=self.timeout_s,
                )
        except grpc.aio.AioRpcError as exc:
            raise CriticError(exc.code().name, exc.details() or "") from None
        return from_proto(r.critique)

    async def score(self, items: Sequence[tuple[Video, str]]) -> list[Critique | CriticError]:
        """Scores (no reasons) for a batch; failed items come back as CriticError."""
        req = critic_pb2.ScoreRequest(
            items=[critic_pb2.ScoreItem(video=_source(v), prompt=p) for v, p in items]
        )
        try:
            return _score_results(await self._stub.Score(req, timeout=self.timeout_s))
        except grpc.aio.AioRpcError as exc:
            raise CriticError(exc.code().name, exc.details() or "") from None
