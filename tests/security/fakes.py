"""Small socket servers on loopback that misbehave on purpose (slow, redirecting, sinks).

Each runs its connections in daemon threads and records what it was sent, so a test can
assert that a refused request never reached it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

Handler = Callable[[socket.socket, bytes], None]


def read_head(conn: socket.socket, timeout_s: float = 5.0) -> bytes:
    """The request line and headers a client sent (up to the blank line)."""
    conn.settimeout(timeout_s)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


class FakeServer:
    """A TCP server on ``host`` whose connections are answered by ``handler``."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", read: bool = True) -> None:
        self.handler = handler
        self.read = read
        self.requests: list[bytes] = []
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        self.host = host
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://host:port`` of this server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            head = read_head(conn) if self.read else b""
            if head:
                self.requests.append(head)
            self.handler(conn, head)

    def close(self) -> None:
        """Stop accepting (connections in flight end with their handler)."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()


@contextlib.contextmanager
def serving(handler: Handler, host: str = "127.0.0.1", read: bool = True) -> Iterator[FakeServer]:
    """A :class:`FakeServer` for the length of a ``with`` block."""
    server = FakeServer(handler, host, read)
    try:
        yield server
    finally:
        server.close()


def closed_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` with nothing listening (bound, then released)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def respond(status: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Handler:
    """A handler that answers one HTTP response and closes."""

    def handler(conn: socket.socket, head: bytes) -> None:
        lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return handler


def trickle(interval_s: float = 0.2, chunk: bytes = b"x", seconds: float = 60.0) -> Handler:
    """A handler that answers 200 and then sends ``chunk`` every ``interval_s``."""

    def handler(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.sendall(chunk)
            time.sleep(interval_s)

    return handler


def endless_chunks(chunk_size: int = 64 * 1024, seconds: float = 30.0) -> Handler:
    """A handler that streams a chunked body with no Content-Length, for as long as read."""

    def handler(conn: socket.socket, head: bytes) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = f"{chunk_size:x}\r\n".encode() + b"\0" * chunk_size + b"\r\n"
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            conn.sendall(piece)

    return handler
