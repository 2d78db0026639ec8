"""What a run may touch: files under the operator's data roots, endpoints on an allow-list.

A run config is written by whoever may start runs, not by the operator, so every
path it names is resolved (symlinks followed, ``..`` collapsed) and must land
under one of the trainer's data roots (``LIFT_TRAINER_DATA_ROOTS``), and every
generator or critic address must be on the operator's allow-list
(``LIFT_TRAINER_ALLOWED_ENDPOINTS``). Files must be regular files (not a device,
FIFO or directory) and are read with a size cap.

A refusal says the same thing whether the path is missing, outside the roots or
of the wrong kind: the caller learns nothing about which paths exist on the
trainer, and the message names no path but the one the caller sent.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lift.errors import InvalidInput

ROOTS_SETTING = "LIFT_TRAINER_DATA_ROOTS"
ENDPOINTS_SETTING = "LIFT_TRAINER_ALLOWED_ENDPOINTS"
ANY_ENDPOINT = "*"

_READ_CHUNK = 1024 * 1024


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):g} MiB"


@dataclass(frozen=True)
class DataRoots:
    """Directories a run may read from; ``roots`` None means anywhere (in-process library use).

    ``exclude`` are paths under a root that stay off limits (the trainer's own
    database and run directories, which hold other runs' configs and weights).
    """

    roots: tuple[Path, ...] | None
    exclude: tuple[Path, ...] = ()

    @classmethod
    def of(cls, roots: Iterable[Path] | None, exclude: Iterable[Path] = ()) -> DataRoots:
        """Roots resolved once, so comparisons are between real paths."""
        resolved = None if roots is None else tuple(Path(os.path.realpath(r)) for r in roots)
        return cls(resolved, tuple(Path(os.path.realpath(e)) for e in exclude))

    # ---- resolution ------------------------------------------------------------------

    def _candidates(self, path: Path) -> list[Path]:
        if path.is_absolute() or self.roots is None:
            return [Path(os.path.realpath(path))]
        # A relative path is relative to a root (the trainer's working directory is
        # nobody's business): the first root where it names something wins.
        return [Path(os.path.realpath(root / path)) for root in self.roots]

    def _allowed(self, real: Path) -> bool:
        if any(real == e or real.is_relative_to(e) for e in self.exclude):
            return False
        if self.roots is None:
            return True
        return any(real == r or real.is_relative_to(r) for r in self.roots)

    def _find(self, path: Path, want: str) -> Path | None:
        """The first resolved candidate that is allowed and of kind ``want`` (file, dir, any)."""
        if "\x00" in str(path):
            return None
        for real in self._candidates(path):
            if not self._allowed(real):
                continue
            try:
                mode = os.stat(real).st_mode  # stat, not open: a FIFO must not block us
            except (OSError, ValueError):
                continue
            if (want in ("file", "any") and stat.S_ISREG(mode)) or (
                want in ("dir", "any") and stat.S_ISDIR(mode)
            ):
                return real
        return None

    def _refuse(self, field: str, kind: str) -> InvalidInput:
        return InvalidInput(
            f"invalid run config: {field} must name {kind} under the trainer's data roots "
            f"({ROOTS_SETTING})"
        )

    def file(self, path: Path, field: str) -> Path:
        """``path`` resolved; it must be a regular file under a root (InvalidInput otherwise)."""
        found = self._find(path, "file")
        if found is None:
            raise self._refuse(field, "a regular file")
        return found

    def directory(self, path: Path, field: str) -> Path:
        """``path`` resolved; it must be a directory under a root."""
        found = self._find(path, "dir")
        if found is None:
            raise self._refuse(field, "a directory")
        return found

    def file_or_directory(self, path: Path, field: str) -> Path:
        """``path`` resolved; a regular file or a directory under a root."""
        found = self._find(path, "any")
        if found is None:
            raise self._refuse(field, "a regular file or a directory")
        return found

    # ---- reading ---------------------------------------------------------------------

    def read(self, path: Path, field: str, max_bytes: int) -> bytes:
        """The bytes of a regular file under a root, at most ``max_bytes`` of them.

        The resolved path is opened without following a final symlink and checked
        again on the open descriptor (a file swapped for a FIFO or a device after
        the check is refused, not read); reading stops at the cap, so an endless
        file cannot fill the trainer's memory.
        """
        real = self.file(path, field)
        flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(real, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOENT, errno.ENXIO):
                raise self._refuse(field, "a regular file") from None
            raise InvalidInput(f"{field}: cannot read {path}: {exc.strerror}") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise self._refuse(field, "a regular file")
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = os.read(fd, min(_READ_CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise InvalidInput(
                        f"{field}: {path} is larger than {_mib(max_bytes)}, the trainer's limit"
                    )
        except OSError as exc:
            raise InvalidInput(f"{field}: cannot read {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        return b"".join(chunks)


# ---- endpoints ----------------------------------------------------------------------

HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})$")
"""host:port (an IPv6 host in brackets): the one address form runs may name."""


def endpoint_key(address: str) -> str | None:
    """A canonical ``host:port`` for comparing addresses; None unless it is host:port.

    Loopback spellings (localhost, 127.0.0.1, ::1, ...) compare equal; other IP
    literals compare by value; names compare case-insensitively. gRPC target
    forms other than host:port (``unix:``, ``dns:///``, ``ipv4:``) return None.
    """
    m = HOST_PORT.fullmatch(address.strip())
    if m is None:
        return None
    host, port = m.group(1).strip("[]").lower().rstrip("."), int(m.group(2))
    if not 0 < port < 65536 or not host:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return f"loopback:{port}" if host == "localhost" else f"{host}:{port}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return f"loopback:{port}" if ip.is_loopback else f"{ip.compressed}:{port}"


@dataclass(frozen=True)
class Endpoints:
    """The generator and critic addresses runs may name."""

    allowed: frozenset[str]
    any: bool = False

    @classmethod
    def of(cls, addresses: Sequence[str]) -> Endpoints:
        """From the operator's list (``*`` allows any host:port)."""
        keys = {endpoint_key(a) for a in addresses if a.strip() != ANY_ENDPOINT}
        return cls(
            frozenset(k for k in keys if k), any(a.strip() == ANY_ENDPOINT for a in addresses)
        )

    def check(self, address: str, field: str) -> None:
        """InvalidInput unless ``address`` is host:port and allowed."""
        key = endpoint_key(address)
        if key is None:
            raise InvalidInput(
                f"invalid run config: {field}: give host:port (e.g. localhost:50052)"
            )
        if not self.any and key not in self.allowed:
            raise InvalidInput(
                f"invalid run config: {field}: {address} is not an endpoint this trainer may "
                f"call; the operator allows endpoints with {ENDPOINTS_SETTING}"
            )
