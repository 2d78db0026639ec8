"""Reading inputs given by URI, under an explicit policy.

``file://`` URIs are read only from below a configured root directory (after
resolving symlinks and ``..``); ``http(s)://`` only when the operator enables
it; every other scheme is refused. Sizes are bounded while reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from lift.errors import InvalidInput, NotFound, PayloadTooLarge


@dataclass(frozen=True)
class UriPolicy:
    """What URIs a service may read."""

    file_root: Path | None = None
    """Directory file:// URIs must lie under; None refuses every file:// URI."""
    allow_http: bool = False
    """Whether http:// and https:// URIs may be fetched."""
    http_timeout_s: float = 20.0


def is_uri(text: str) -> bool:
    """Whether a video argument is a URI (``scheme://...``) rather than a local path."""
    return "://" in text


def read_uri(uri: str, policy: UriPolicy, max_bytes: int) -> bytes:
    """Return the bytes ``uri`` names, or raise with a sentence saying why not."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme == "file":
        return _read_file(uri, policy, max_bytes)
    if scheme in ("http", "https"):
        if not policy.allow_http:
            raise InvalidInput(
                f"http(s) URIs are disabled on this server ({uri!r}); send the video bytes "
                "instead, or ask the operator to enable remote URIs"
            )
        return _read_http(uri, policy, max_bytes)
    raise InvalidInput(
        f"unsupported URI {uri!r}: use file:// (under the server's video root) or send the bytes"
    )


def local_path(uri: str, policy: UriPolicy) -> Path:
    """The resolved local path a file:// URI names, refused unless it lies under the root.

    Existence is left to the caller (a file or a directory may be wanted).
    """
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "file":
        raise InvalidInput(f"unsupported URI {uri!r}: this input must be a file:// URI")
    if parsed.netloc not in ("", "localhost"):
        raise InvalidInput(f"file:// URIs must name a local path, not host {parsed.netloc!r}")
    if policy.file_root is None:
        raise InvalidInput(
            "file:// URIs are disabled on this server (no root directory configured); "
            "send the bytes"
        )
    path = unquote(parsed.path)
    root = policy.file_root.resolve()
    target = Path(path).resolve()
    if not target.is_relative_to(root):
        raise InvalidInput(f"{path!r} is outside the server's root directory {str(root)!r}")
    return target


def _read_file(uri: str, policy: UriPolicy, max_bytes: int) -> bytes:
    target = local_path(uri, policy)
    if not target.is_file():
        raise NotFound(f"no file at {unquote(urlparse(uri).path)!r} under the server's root")
    size = target.stat().st_size
    if size > max_bytes:
        raise PayloadTooLarge(f"the file is {size} bytes; the limit is {max_bytes} bytes")
    return target.read_bytes()


def _read_http(uri: str, policy: UriPolicy, max_bytes: int) -> bytes:
    try:
        with httpx.stream("GET", uri, timeout=policy.http_timeout_s, follow_redirects=True) as r:
            if r.status_code != 200:
                raise InvalidInput(f"fetching {uri!r} returned HTTP {r.status_code}")
            chunks, total = [], 0
            for chunk in r.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise PayloadTooLarge(f"{uri!r} is larger than the {max_bytes}-byte limit")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"could not fetch {uri!r}: {exc}") from exc
