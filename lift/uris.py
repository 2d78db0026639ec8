"""Reading inputs given by URI, under an explicit policy.

``file://`` URIs are read only from below a configured root directory (after
resolving symlinks and ``..``); ``http(s)://`` only when the operator enables
it; every other scheme is refused. Sizes are bounded while reading.

Remote fetching is built against server-side request forgery: the host is resolved
here and every address it resolves to must be public (not loopback, private,
link-local, CGNAT, multicast, unspecified or reserved, nor an IPv6 form embedding one)
unless the operator's allow-list names the host or its network; the connection then
goes to the address that was checked (the Host header and TLS name stay the URI's),
so a DNS answer cannot change between check and connect; redirects are followed by
hand and each hop is checked again; one total deadline covers the whole fetch. Every
network failure answers the same sentence, so the caller cannot tell an open port
from a closed one; a policy refusal says so without touching the network.

Messages name only what the caller sent, never a server path.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx

from lift.errors import DeadlineExceeded, InvalidInput, NotFound, Overloaded, PayloadTooLarge

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URI_CHARS = 8192
"""Longest URI accepted; longer ones are refused before any parsing."""

FETCH_FAILED = (
    "could not fetch the video URI: it did not answer 200 with the video in time; check "
    "that it is publicly reachable, or send the video bytes instead"
)
"""The one answer for every network failure (refused, reset, timeout, TLS, HTTP status):
the caller must not learn whether a port is open."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 / 8215).
_NAT64 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
)
_COMPAT = ipaddress.IPv6Network("::/96")  # deprecated IPv4-compatible ::a.b.c.d


def parse_allowlist(
    entries: tuple[str, ...] | list[str],
) -> tuple[frozenset[str], tuple[Network, ...]]:
    """Split allow-list entries into host names and networks (CIDR or single addresses).

    Raises ValueError naming the entry that is neither.
    """
    hosts: set[str] = set()
    nets: list[Network] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not re.fullmatch(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?", entry):
            raise ValueError(
                f"allow-list entry {raw!r} is neither a host name nor a network (CIDR)"
            )
        hosts.add(entry)
    return frozenset(hosts), tuple(nets)


@dataclass(frozen=True)
class UriPolicy:
    """What URIs a service may read."""

    file_root: Path | None = None
    """Directory file:// URIs must lie under; None refuses every file:// URI."""
    allow_http: bool = False
    """Whether http:// and https:// URIs may be fetched."""
    http_timeout_s: float = 30.0
    """Total time one fetch may take: resolution, every redirect hop and the whole body."""
    http_allow: tuple[str, ...] = ()
    """Host names and networks exempt from the public-address rule (the operator's own)."""
    http_max_redirects: int = 3
    """Redirects followed (each hop checked again); more are refused."""
    _hosts: frozenset[str] = field(init=False, repr=False, compare=False)
    _nets: tuple[Network, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        hosts, nets = parse_allowlist(self.http_allow)
        object.__setattr__(self, "_hosts", hosts)
        object.__setattr__(self, "_nets", nets)

    def allows(self, host: str, ip: IPAddress) -> bool:
        """Whether the allow-list exempts ``host`` (as written in the URI) or address ``ip``."""
        if host.lower().rstrip(".") in self._hosts:
            return True
        candidates = [ip]
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            candidates.append(embedded)
        return any(c in net for c in candidates for net in self._nets if c.version == net.version)


def is_uri(text: str) -> bool:
    """Whether a video argument is a URI (``scheme://...``) rather than a local path."""
    return "://" in text


def is_http_uri(text: str) -> bool:
    """Whether ``text`` is an http:// or https:// URI (fetched on the event loop)."""
    return text[:8].lower().startswith(("http://", "https://"))


def _shown(uri: str) -> str:
    """The caller's URI for a message: quoted, escaped and cut to a readable length."""
    return repr(uri if len(uri) <= 200 else uri[:200] + "…")


def check_uri_text(uri: str) -> None:
    """Refuse URIs that are too long or carry control characters, raw or percent-encoded.

    A NUL (``%00``) or newline in a path or host is never part of a real video's address
    and trips file-system and HTTP code that does not expect it.
    """
    if len(uri) > MAX_URI_CHARS:
        raise InvalidInput(f"the URI has {len(uri)} characters; the limit is {MAX_URI_CHARS}")
    if _CONTROL.search(uri) or _CONTROL.search(unquote(uri, errors="replace")):
        raise InvalidInput(
            "the URI contains a control character (such as NUL, %00, or a line break); remove it"
        )


def read_uri(uri: str, policy: UriPolicy, max_bytes: int) -> bytes:
    """Return the bytes ``uri`` names, or raise with a sentence saying why not.

    Blocking: http(s) URIs are fetched on a private event loop. Services fetch them on
    their own loop with :class:`FetchGate` before taking a worker instead.
    """
    check_uri_text(uri)
    scheme = urlparse(uri).scheme.lower()
    if scheme == "file":
        return _read_file(uri, policy, max_bytes)
    if scheme in ("http", "https"):
        return asyncio.run(fetch_http(uri, policy, max_bytes))
    raise InvalidInput(
        f"unsupported URI {_shown(uri)}: use file:// (under the server's video root) or send "
        "the bytes"
    )


def local_path(uri: str, policy: UriPolicy) -> Path:
    """The resolved local path a file:// URI names, refused unless it lies under the root.

    Existence is left to the caller (a file or a directory may be wanted).
    """
    check_uri_text(uri)
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "file":
        raise InvalidInput(f"unsupported URI {_shown(uri)}: this input must be a file:// URI")
    if parsed.netloc not in ("", "localhost"):
        raise InvalidInput(f"file:// URIs must name a local path, not host {_shown(parsed.netloc)}")
    if policy.file_root is None:
        raise InvalidInput(
            "file:// URIs are disabled on this server (no root directory configured); "
            "send the bytes"
        )
    path = unquote(parsed.path)
    try:
        root = policy.file_root.resolve()
        target = Path(path).resolve()
    except (OSError, ValueError, RuntimeError):  # symlink loops, names too long
        raise InvalidInput(f"{_shown(path)} is not a usable path") from None
    if not target.is_relative_to(root):
        # The root itself is the operator's business: the message names only the input.
        raise InvalidInput(f"{_shown(path)} is outside the server's root directory")
    # A name no filesystem holds would make every later stat raise (ENAMETOOLONG).
    if any(len(part.encode("utf-8", "surrogateescape")) > 255 for part in target.parts):
        raise InvalidInput(f"{_shown(path)} has a name longer than 255 bytes")
    return target


class NotARegularFile(ValueError):
    """What :func:`read_regular_file` opened is a FIFO, device, directory or the like."""


class FileTooLarge(ValueError):
    """A file over the byte limit :func:`read_regular_file` was given."""

    def __init__(self, message: str, size: int | None) -> None:
        super().__init__(message)
        self.size = size
        """Its size on disk; None when it grew over the limit while being read."""


def read_regular_file(path: Path | str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``.

    Open first, then check what was opened: a FIFO or device (or one swapped in after the
    caller checked the path) would block the reader (O_NONBLOCK), and a symlink swapped in
    could lead elsewhere (O_NOFOLLOW: callers pass resolved paths). The size is checked on
    the descriptor, and the read is capped rather than trusting it: the file may grow.
    Raises OSError (cannot open or read), :class:`NotARegularFile`, :class:`FileTooLarge`.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotARegularFile(f"{path} is not a regular file (a FIFO, device or directory)")
        if st.st_size > max_bytes:
            raise FileTooLarge(
                f"{path} is {st.st_size} bytes, over the {max_bytes} limit", st.st_size
            )
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > max_bytes:
            raise FileTooLarge(f"{path} grew over the {max_bytes} limit while being read", None)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_file(uri: str, policy: UriPolicy, max_bytes: int) -> bytes:
    target = local_path(uri, policy)
    shown = _shown(unquote(urlparse(uri).path))
    # A name too long for the filesystem is an input error, not a crash; missing, unreadable
    # and not-a-file answer alike.
    try:
        return read_regular_file(target, max_bytes)
    except FileTooLarge:
        raise PayloadTooLarge(f"the file is larger than the {max_bytes}-byte limit") from None
    except (OSError, NotARegularFile):
        raise NotFound(f"no file at {shown} under the server's root") from None


# -- http(s) ----------------------------------------------------------------------------


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, 6to4, NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64) or (ip in _COMPAT and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be fetched ("loopback", "private", ...), or None when it is public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        return address_refusal(embedded)
    for kind, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
    ):
        if hit:
            return kind
    # is_global also excludes shared address space (100.64/10, CGNAT) and the rest of
    # the IANA special-purpose registry.
    return None if ip.is_global else "non-public"


def _policy_refusal(redirected: bool) -> InvalidInput:
    where = "redirects to a host that resolves" if redirected else "host resolves"
    return InvalidInput(
        f"the video URI's {where} to a non-public address (loopback, private, link-local, "
        "multicast or reserved), which this server does not fetch; send the video bytes, or "
        "ask the operator to add the host to the critic's http URI allow-list"
    )


async def _vetted_addresses(url: httpx.URL, policy: UriPolicy, redirected: bool) -> list[str]:
    """The addresses ``url``'s host resolves to, all checked against the policy."""
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidInput(
            "the video URI redirects to a non-http(s) address"
            if redirected
            else "the video URI must be http(s)://host/path"
        )
    if url.userinfo:
        raise InvalidInput("credentials in video URIs are not supported; remove 'user:pass@'")
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.raw_host.decode("ascii")  # IDNA-encoded, as DNS wants it
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        log.info("video URI host %r did not resolve: %s", host, exc)
        raise InvalidInput(FETCH_FAILED) from None
    addresses: list[str] = []
    for *_, sockaddr in infos:
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    for text in addresses:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
        if policy.allows(url.host, ip):
            continue
        kind = address_refusal(ip)
        if kind is not None:
            log.warning("refused video URI host %r: %s is %s", url.host, ip, kind)
            raise _policy_refusal(redirected)
    if not addresses:
        raise InvalidInput(FETCH_FAILED)
    return addresses


async def _open(client: httpx.AsyncClient, url: httpx.URL, addresses: list[str]) -> httpx.Response:
    """Send GET ``url`` to one of the vetted ``addresses``; the first that connects answers.

    The request's URL carries the address, so nothing resolves the name again; the Host
    header and (for https) the TLS server name and certificate check keep the URI's host.
    """
    last: Exception | None = None
    for address in addresses:
        request = client.build_request(
            "GET",
            url.copy_with(host=address),
            headers={"Host": url.netloc.decode("ascii"), "Accept-Encoding": "identity"},
            extensions={"sni_hostname": url.raw_host.decode("ascii")}
            if url.scheme == "https"
            else {},
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            last = exc
    assert last is not None
    raise last


async def _body(response: httpx.Response, max_bytes: int) -> bytes:
    """The response body, refused as soon as it passes ``max_bytes``."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"the video at the URI is larger than the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    total = 0
    # Raw bytes: identity was asked for, and decoding a compressed answer here could
    # inflate one small chunk far past the cap before it is counted.
    async for chunk in response.aiter_raw():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"the video at the URI is larger than the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _fetch(url: httpx.URL, policy: UriPolicy, max_bytes: int) -> bytes:
    # trust_env=False: a proxy from the environment would resolve the name itself and
    # undo the address check.
    async with httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=policy.http_timeout_s
    ) as client:
        for hop in range(policy.http_max_redirects + 1):
            addresses = await _vetted_addresses(url, policy, redirected=hop > 0)
            response = await _open(client, url, addresses)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    check_uri_text(location)
                    url = url.join(location)
                    continue
                if response.status_code != 200:
                    log.info("video URI %s answered HTTP %d", url, response.status_code)
                    raise InvalidInput(FETCH_FAILED)
                return await _body(response, max_bytes)
            finally:
                await response.aclose()
    raise InvalidInput(
        f"the video URI redirected more than {policy.http_max_redirects} times; "
        "send its final address"
    )


async def fetch_http(uri: str, policy: UriPolicy, max_bytes: int) -> bytes:
    """Fetch an http(s) URI under ``policy``: checked addresses, one deadline, a size cap."""
    check_uri_text(uri)
    if not policy.allow_http:
        raise InvalidInput(
            f"http(s) URIs are disabled on this server ({_shown(uri)}); send the video bytes "
            "instead, or ask the operator to enable remote URIs"
        )
    try:
        url = httpx.URL(uri)
    except (httpx.InvalidURL, ValueError):
        raise InvalidInput(f"{_shown(uri)} is not a valid http(s) URI") from None
    try:
        async with asyncio.timeout(policy.http_timeout_s):
            return await _fetch(url, policy, max_bytes)
    except (TimeoutError, httpx.HTTPError, httpx.InvalidURL, OSError, ValueError) as exc:
        # Refused, reset, timed out, TLS or protocol failure: the detail goes to the
        # log only, so the answer does not tell an open port from a closed one.
        log.info("could not fetch video URI %s: %r", url, exc)
        raise InvalidInput(FETCH_FAILED) from None


class FetchGate:
    """Bounds how many http(s) fetches run at once and how many may wait for a turn.

    Fetches run on the service's event loop before the request takes a worker, so slow
    URIs occupy only a fetch slot and a connection, never the judging workers or their
    queue. Past ``concurrency + queue`` fetches the caller gets RESOURCE_EXHAUSTED.
    """

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self._admitted = 0

    @property
    def admitted(self) -> int:
        """Fetches running or waiting now."""
        return self._admitted

    async def fetch(
        self, uri: str, policy: UriPolicy, max_bytes: int, wait_s: float | None = None
    ) -> bytes:
        """:func:`fetch_http` once a slot is free (waiting at most ``wait_s``)."""
        if self._admitted >= self.concurrency + self.queue:
            raise Overloaded(
                f"{self._admitted} video URIs are being fetched; retry with backoff or send "
                "the video bytes"
            )
        self._admitted += 1
        try:
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout=wait_s)
            except TimeoutError:
                raise DeadlineExceeded(
                    "the request's deadline passed while it waited to fetch its video URI"
                ) from None
            try:
                return await fetch_http(uri, policy, max_bytes)
            finally:
                self._slots.release()
        finally:
            self._admitted -= 1
