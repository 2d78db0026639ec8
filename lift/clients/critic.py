"""Clients for the critic, blocking and asyncio, over gRPC (or HTTP for the blocking one).

    from lift.client import CriticClient
    with CriticClient("localhost:50051") as critic:
        c = critic.critique("clip.mp4", prompt="a dog runs on the beach")
        print(c.reward, c.dimension("motion_smoothness").reasons)
        pair = critic.compare("a.mp4", "b.mp4", prompt="a dog runs on the beach")
        print(pair.overall.prob_a, pair.dimension("video_fidelity").prob_tie)

A ``video`` argument is bytes, a local path (read and sent as bytes), or a URI
string with a scheme ("file:///...", "https://...") that the server reads.
Videos larger than ``upload_chunk_bytes`` go through the streaming upload.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from lift.clients.base import (
    AsyncGrpcClient,
    ClientBase,
    ClientError,
    Credentials,
    GrpcClient,
)
from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.critique import (
    Comparison,
    Critique,
    comparison_from_json,
    comparison_from_proto,
    dimension_from_proto,
    from_json,
    from_proto,
)
from lift.uris import is_uri
from lift.wire import message_to_data, seconds

Video = bytes | str | Path
CHUNK = 2 * 1024 * 1024
_MAX_MESSAGE = 80 * 1024 * 1024


class CriticError(ClientError):
    """The critic refused a request (or one item of a batch); ``code`` is the gRPC status name."""


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


def _critique_call(video: Video, prompt: str, chunk: int) -> tuple[str, Any]:
    """The RPC and request for one critique: the streaming upload for large videos."""
    data, _ = _load(video)
    if data is not None and len(data) > chunk:
        return "CritiqueUpload", _upload_messages(data, prompt, chunk)
    return "Critique", critic_pb2.CritiqueRequest(video=_source(video), prompt=prompt)


def _score_request(items: Sequence[tuple[Video, str]]) -> critic_pb2.ScoreRequest:
    return critic_pb2.ScoreRequest(
        items=[critic_pb2.ScoreItem(video=_source(v), prompt=p) for v, p in items]
    )


def _score_results(resp: critic_pb2.ScoreResponse) -> list[Critique | CriticError]:
    out: list[Critique | CriticError] = []
    for r in resp.results:
        if r.WhichOneof("outcome") == "critique":
            out.append(from_proto(r.critique))
        else:
            out.append(CriticError(r.error.code, r.error.message))
    return out


def _compare_request(a: Video, b: Video, prompt: str) -> critic_pb2.CompareRequest:
    return critic_pb2.CompareRequest(prompt=prompt, a=_source(a), b=_source(b))


def info_to_json(msg: critic_pb2.GetInfoResponse) -> dict[str, Any]:
    """GetInfo as the JSON of GET /v1/info, so both transports give the same dict."""
    return {
        "model": message_to_data(msg.model),
        "assessed_dimensions": [dimension_from_proto(d).value for d in msg.assessed_dimensions],
        "reward_map": message_to_data(msg.reward_map),
        "limits": {
            "max_video_bytes": msg.max_video_bytes,
            "max_duration_s": seconds(msg.max_duration),
            "max_frames": msg.max_frames,
            "max_side_px": msg.max_side_px,
            "max_prompt_chars": msg.max_prompt_chars,
            "max_batch_items": msg.max_batch_items,
        },
        "suite_version": msg.suite_version,
        "protocol": msg.protocol,
        "score_semantics": msg.score_semantics,
        "frame_sampling": message_to_data(msg.frame_sampling),
    }


class CriticClient(GrpcClient):
    """Blocking client. ``server`` is "host:port" / "grpc://host:port", or "http(s)://host:port"."""

    error = CriticError
    max_message_bytes = _MAX_MESSAGE

    def __init__(
        self,
        server: str,
        timeout_s: float = 120.0,
        upload_chunk_bytes: int = CHUNK,
        credentials: Credentials | None = None,
        token: str | None = None,
    ) -> None:
        self.chunk = upload_chunk_bytes
        self._http: httpx.Client | None = None
        if server.startswith(("http://", "https://")):
            ClientBase.__init__(self, timeout_s, credentials, token)
            self._http = httpx.Client(
                base_url=server,
                timeout=timeout_s,
                headers=self.credentials.http_headers(),
                verify=self.credentials.http_verify(),
            )
        else:
            super().__init__(
                server, critic_pb2_grpc.CriticServiceStub, timeout_s, credentials, token
            )

    def close(self) -> None:
        """Close the connection."""
        if self._http is not None:
            self._http.close()
        else:
            super().close()

    def critique(self, video: Video, prompt: str) -> Critique:
        """Full critique of one video."""
        if self._http is not None:
            return from_json(self._http_call("POST", "/v1/critiques", video=video, prompt=prompt))
        return from_proto(self._unary(*_critique_call(video, prompt, self.chunk)).critique)

    def score(self, items: Sequence[tuple[Video, str]]) -> list[Critique | CriticError]:
        """Scores (no reasons) for a batch; failed items come back as CriticError."""
        if self._http is not None:
            body = {"items": [_json_item(v, p) for v, p in items]}
            results = self._http_call("POST", "/v1/scores", json=body)["results"]
            return [
                from_json(r["critique"])
                if r.get("critique") is not None
                else CriticError(r["error"]["code"], r["error"]["message"])
                for r in results
            ]
        return _score_results(self._unary("Score", _score_request(items)))

    def compare(self, a: Video, b: Video, prompt: str) -> Comparison:
        """Which of two videos of ``prompt`` is better: per dimension and overall."""
        if self._http is not None:
            if _is_uri(a) or _is_uri(b):
                body = {"prompt": prompt, "a": _json_ref(a), "b": _json_ref(b)}
                return comparison_from_json(self._http_call("POST", "/v1/comparisons", json=body))
            data_a, _ = _load(a)
            data_b, _ = _load(b)
            files = {"video_a": ("video_a", data_a or b""), "video_b": ("video_b", data_b or b"")}
            obj = self._http_call("POST", "/v1/comparisons", files=files, form={"prompt": prompt})
            return comparison_from_json(obj)
        return comparison_from_proto(
            self._unary("Compare", _compare_request(a, b, prompt)).comparison
        )

    def info(self) -> dict[str, Any]:
        """Backend, model and limits, as the JSON of GET /v1/info."""
        if self._http is not None:
            return self._http_call("GET", "/v1/info")
        return info_to_json(self._unary("GetInfo", critic_pb2.GetInfoRequest()))

    def _http_call(
        self,
        method: str,
        path: str,
        video: Video | None = None,
        prompt: str = "",
        json: Any = None,
        files: dict[str, tuple[str, bytes]] | None = None,
        form: dict[str, str] | None = None,
    ) -> Any:
        assert self._http is not None
        try:
            if files is not None:
                r = self._http.request(method, path, files=files, data=form)
            elif video is not None and not _is_uri(video):
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


def _json_ref(video: Video) -> dict[str, str]:
    data, uri = _load(video)
    if uri is not None:
        return {"video_uri": uri}
    return {"video_b64": base64.b64encode(data or b"").decode()}


def _json_item(video: Video, prompt: str) -> dict[str, str]:
    return {"prompt": prompt, **_json_ref(video)}


class AsyncCriticClient(AsyncGrpcClient):
    """asyncio client over gRPC: ``async with AsyncCriticClient("host:port") as c: ...``."""

    error = CriticError
    max_message_bytes = _MAX_MESSAGE

    def __init__(
        self,
        server: str,
        timeout_s: float = 120.0,
        upload_chunk_bytes: int = CHUNK,
        credentials: Credentials | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(server, critic_pb2_grpc.CriticServiceStub, timeout_s, credentials, token)
        self.chunk = upload_chunk_bytes

    async def critique(self, video: Video, prompt: str) -> Critique:
        """Full critique of one video."""
        return from_proto((await self._unary(*_critique_call(video, prompt, self.chunk))).critique)

    async def score(self, items: Sequence[tuple[Video, str]]) -> list[Critique | CriticError]:
        """Scores (no reasons) for a batch; failed items come back as CriticError."""
        return _score_results(await self._unary("Score", _score_request(items)))

    async def compare(self, a: Video, b: Video, prompt: str) -> Comparison:
        """Which of two videos of ``prompt`` is better: per dimension and overall."""
        resp = await self._unary("Compare", _compare_request(a, b, prompt))
        return comparison_from_proto(resp.comparison)

    async def info(self) -> dict[str, Any]:
        """Backend, model and limits, as the JSON of GET /v1/info."""
        return info_to_json(await self._unary("GetInfo", critic_pb2.GetInfoRequest()))
