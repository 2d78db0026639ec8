"""Limits that are limits: bodies capped while they stream, slow clients cut off, caps on
connections and gRPC messages, and other clients still served while slow ones wait.

The attacks of issue 16 replayed on loopback against a critic with tight limits: a
chunked body with no Content-Length (the issue sent 300 MB), headers and bodies sent a
byte at a time, hundreds of half-sent requests, oversize gRPC messages and uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import select
import socket
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest

from lift.common.v1 import common_pb2
from lift.critic.v1 import critic_pb2, critic_pb2_grpc
from lift.errors import PayloadTooLarge
from lift.http.limits import BodyLimits
from lift.runner import ServiceRunner, start_in_thread
from lift.services.critic.server import build_critic
from lift.services.critic.settings import CriticSettings

BODY_LIMIT = 1024 * 1024


@contextlib.contextmanager
def _critic(**overrides: object) -> Iterator[ServiceRunner]:
    settings = CriticSettings(
        grpc_port=0,
        http_port=0,
        log_level="WARNING",
        workers=2,
        max_queue=4,
        max_video_bytes=512 * 1024,
        max_message_bytes=2 * 1024 * 1024,
        max_body_bytes=BODY_LIMIT,
        http_header_timeout_s=1.0,
        body_timeout_s=1.5,
        **overrides,
    )
    runner, stop = start_in_thread(build_critic, settings)
    try:
        yield runner
    finally:
        stop()


@pytest.fixture(scope="module")
def critic() -> Iterator[ServiceRunner]:
    with _critic() as runner:
        yield runner


def _connect(runner: ServiceRunner) -> socket.socket:
    return socket.create_connection(("127.0.0.1", runner.http_port), timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed ``sock`` within ``seconds``, and what it sent before."""
    end = time.monotonic() + seconds
    got = b""
    while time.monotonic() < end:
        ready, _, _ = select.select([sock], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return True, got
        if not chunk:
            return True, got
        got += chunk
    return False, got


def _flood_chunked(
    runner: ServiceRunner, path: str, content_type: str, total: int
) -> tuple[int, bytes]:
    """POST a chunked body of ``total`` bytes (no Content-Length) until the server stops us.

    Returns the bytes we managed to send and the server's reply.
    """
    sock = _connect(runner)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    sock.sendall(head.encode())
    if content_type.startswith("multipart/"):  # a real file part that never ends
        part = (
            b'--x\r\nContent-Disposition: form-data; name="video"; filename="a.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n"
        )
        sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    size = 64 * 1024
    piece = f"{size:x}\r\n".encode() + b"a" * size + b"\r\n"
    sent = 0
    reply = b""
    with sock:
        sock.settimeout(2.0)
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break  # the server answered (or closed) mid-body
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += size
        with contextlib.suppress(OSError):
            _, reply = _closed_within(sock, 5)
    return sent, reply


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/critiques", "application/json"),
        ("/v1/critiques", "multipart/form-data; boundary=x"),
        ("/v1/scores", "application/json"),
        ("/v1/nowhere", "application/json"),
    ],
)
def test_chunked_oversize_body_is_refused_while_streaming(critic, path, content_type) -> None:
    peak_before = resource.getrusage(
        resource.RUSAGE_SELF
    ).ru_maxrss  # KiB; the server is in-process
    sent, reply = _flood_chunked(critic, path, content_type, total=300 * 1024 * 1024)
    peak_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert peak_growth_mb < 150, peak_growth_mb  # the critic grew by 1.1 GB
    status = reply.split(b"\r\n", 1)[0]
    if path == "/v1/nowhere":  # never read: answered, then the connection is closed
        assert b" 404 " in status, reply[:200]
    else:
        assert b" 413 " in status, reply[:200]
        assert b"larger than" in reply
    # The server read all 300 MB first; ours stops at the limit. What we could
    # still push is the limit plus the kernel's socket buffers, nowhere near 300 MB.
    assert sent < 48 * 1024 * 1024, sent


def test_body_limits_reads_at_most_the_limit_plus_one_chunk() -> None:
    """The middleware itself: an endless chunked body is pulled only up to the cap."""
    pulled = 0
    chunk = b"x" * 65536

    async def endless_receive() -> dict:
        nonlocal pulled
        pulled += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        while True:
            await receive()

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    middleware = BodyLimits(app, max_bytes=BODY_LIMIT, timeout_s=10)
    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    asyncio.run(middleware(scope, endless_receive, send))
    assert pulled <= BODY_LIMIT + len(chunk)
    assert sent[0]["status"] == 413


def test_declared_oversize_body_is_refused_before_reading(critic) -> None:
    with _connect(critic) as sock:
        sock.sendall(
            b"POST /v1/critiques HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 300000000\r\n\r\n"
        )
        closed, reply = _closed_within(sock, 5)
    assert closed and b" 413 " in reply.split(b"\r\n", 1)[0]


def test_slow_headers_are_cut_off(critic) -> None:
    start = time.monotonic()
    with _connect(critic) as sock:
        sock.sendall(b"POST /v1/critiques HTTP/1.1\r\n")
        closed = False
        for _ in range(20):  # a header byte every 0.2 s: never finishes in time
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
            done, _ = _closed_within(sock, 0.2)
            if done:
                closed = True
                break
    assert closed and time.monotonic() - start < 3.5


def test_an_idle_connection_is_cut_off(critic) -> None:
    with _connect(critic) as sock:
        closed, _ = _closed_within(sock, 4)
    assert closed


def test_slow_body_gets_408_within_the_body_deadline(critic) -> None:
    start = time.monotonic()
    with _connect(critic) as sock:
        sock.sendall(
            b"POST /v1/critiques HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10000\r\n\r\n{"
        )
        reply = b""
        answered = closed = None
        for _ in range(50):  # a byte every 0.2 s, also after the refusal
            with contextlib.suppress(OSError):
                sock.sendall(b" ")
            done, got = _closed_within(sock, 0.2)
            reply += got
            if answered is None and b"\r\n\r\n" in reply:
                answered = time.monotonic() - start
            if done:
                closed = time.monotonic() - start
                break
    assert b" 408 " in reply.split(b"\r\n", 1)[0], reply[:200]
    assert answered is not None and answered < 3, answered  # body deadline 1.5 s
    assert closed is not None and closed < 6, closed  # then a short linger, then closed


def test_other_clients_are_served_while_slow_ones_wait(critic, mp4s) -> None:  # type: ignore[no-untyped-def]
    url = f"http://127.0.0.1:{critic.http_port}"
    slow: list[socket.socket] = []
    try:
        for _ in range(200):  # hundreds of half-sent requests, each holding a connection
            sock = _connect(critic)
            sock.sendall(
                b"POST /v1/critiques HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n"
            )
            slow.append(sock)
        start = time.monotonic()
        files = {"video": ("a.mp4", mp4s["clean"], "video/mp4")}
        r = httpx.post(f"{url}/v1/critiques", data={"prompt": "a dog"}, files=files, timeout=20)
        assert r.status_code == 200, r.text
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - start < 5
        # ... and the slow ones are gone by their deadline.
        time.sleep(2.0)
        assert all(_closed_within(s, 0.5)[0] for s in slow[:5])
    finally:
        for sock in slow:
            sock.close()


def test_connection_cap_answers_503_and_recovers() -> None:
    with _critic(http_max_connections=10) as runner:
        url = f"http://127.0.0.1:{runner.http_port}"
        idle = [_connect(runner) for _ in range(12)]
        try:
            time.sleep(0.2)
            r = httpx.get(f"{url}/healthz", timeout=5)
            assert r.status_code == 503  # at once, not a hang
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.3)
        assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200


# -- gRPC -------------------------------------------------------------------------------


def test_grpc_oversize_message_is_refused(critic) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{critic.grpc_port}") as channel:
        stub = critic_pb2_grpc.CriticServiceStub(channel)
        big = critic_pb2.CritiqueRequest(
            video=common_pb2.VideoSource(data=b"\0" * (3 * 1024 * 1024)), prompt="a dog"
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.Critique(big, timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _upload(prompt: str, chunks: Iterator[bytes]) -> Iterator[critic_pb2.CritiqueUploadRequest]:
    yield critic_pb2.CritiqueUploadRequest(header=critic_pb2.CritiqueUploadHeader(prompt=prompt))
    for chunk in chunks:
        yield critic_pb2.CritiqueUploadRequest(chunk=chunk)


def test_grpc_upload_total_is_capped(critic) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{critic.grpc_port}") as channel:
        stub = critic_pb2_grpc.CriticServiceStub(channel)
        endless = (b"\0" * 256 * 1024 for _ in range(10_000))  # 2.5 GB if it were all read
        with pytest.raises(grpc.RpcError) as info:
            stub.CritiqueUpload(_upload("a dog", endless), timeout=20)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "limit" in (info.value.details() or "")


def test_grpc_slow_upload_is_cut_off(critic) -> None:
    def trickle() -> Iterator[bytes]:
        for _ in range(100):
            time.sleep(0.2)
            yield b"\0"

    start = time.monotonic()
    with grpc.insecure_channel(f"127.0.0.1:{critic.grpc_port}") as channel:
        stub = critic_pb2_grpc.CriticServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.CritiqueUpload(_upload("a dog", trickle()), timeout=30)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "did not arrive" in (info.value.details() or "")
    assert time.monotonic() - start < 6


def test_payload_too_large_is_413_over_http_too(critic) -> None:
    url = f"http://127.0.0.1:{critic.http_port}"
    r = httpx.post(
        f"{url}/v1/critiques",
        data={"prompt": "a dog"},
        files={"video": ("a.mp4", b"\0" * (BODY_LIMIT + 1), "video/mp4")},
        timeout=20,
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == PayloadTooLarge.grpc_code.name


def test_oversize_headers_are_refused(critic) -> None:
    with _connect(critic) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n"
        )
        closed, reply = _closed_within(sock, 5)
    assert closed and b" 431 " in reply.split(b"\r\n", 1)[0], reply[:100]
    with _connect(critic) as sock:  # the same headers sent in pieces: h11's own bound
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
        for _ in range(10):
            with contextlib.suppress(OSError):
                sock.sendall(b"a" * 10_000)
            time.sleep(0.01)
        closed, reply = _closed_within(sock, 5)
    assert closed and b" 400 " in reply.split(b"\r\n", 1)[0], reply[:100]
