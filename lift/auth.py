"""Bearer tokens and scopes: the tokens file, and which scope each call of each service needs.

The operator keeps a tokens file (``LIFT_AUTH_FILE``; ``lift auth add`` writes it)::

    {"tokens": [{"name": "ci", "scopes": ["judge"], "hash": "sha256:9f86d0..."}]}

Only hashes are stored. A token is 32 random bytes (``lift_`` + urlsafe base64), so a
plain SHA-256 is enough: nobody can brute-force a 256-bit secret from its hash, and
there is no password to stretch. Presented tokens are hashed and compared with
:func:`hmac.compare_digest` against every entry, so timing does not tell how much of
a hash matched.

Which scope a call needs is declared once per service in :data:`ACCESS`: gRPC full
method names and HTTP ``"METHOD /route"`` templates. One gRPC interceptor
(:mod:`lift.grpc_server`) and one ASGI middleware (:mod:`lift.http.security`) enforce
it; a call that is not listed needs ``admin`` (a new route is closed until it is
declared), and the open paths (health, readiness; metrics, docs and reflection when
the settings say so) never need a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

log = logging.getLogger(__name__)

TOKEN_PREFIX: Final = "lift_"
_HASH_PREFIX: Final = "sha256:"


class Scope(StrEnum):
    """A capability a token grants."""

    JUDGE = "judge"
    """Critic: Critique, CritiqueUpload, Score (POST /v1/critiques, /v1/scores, /v1/comparisons)."""
    GENERATE = "generate"
    """Generator: Generate (POST /v1/generations)."""
    ADAPTERS = "adapters"
    """Generator: load, promote and pin adapters (what every caller is served)."""
    RUNS = "runs"
    """Trainer: start, read, list, cancel and watch runs."""
    RATE = "rate"
    """Feedback: rate videos (next item, its video, ratings, skip, flag, undo)."""
    ADMIN = "admin"
    """Everything, including calls no table lists."""


ANY_TOKEN: Final = None
"""A call any valid token may make (GetInfo, GET /v1/info)."""

Rule = Scope | None


ACCESS: Final[Mapping[str, Mapping[str, Rule]]] = {
    "critic": {
        "/lift.critic.v1.CriticService/Critique": Scope.JUDGE,
        "/lift.critic.v1.CriticService/CritiqueUpload": Scope.JUDGE,
        "/lift.critic.v1.CriticService/Score": Scope.JUDGE,
        "/lift.critic.v1.CriticService/Compare": Scope.JUDGE,
        "/lift.critic.v1.CriticService/GetInfo": ANY_TOKEN,
        "POST /v1/critiques": Scope.JUDGE,
        "POST /v1/scores": Scope.JUDGE,
        "POST /v1/comparisons": Scope.JUDGE,
        "GET /v1/info": ANY_TOKEN,
    },
    "generator": {
        "/lift.generator.v1.GeneratorService/Generate": Scope.GENERATE,
        "/lift.generator.v1.GeneratorService/LoadAdapter": Scope.ADAPTERS,
        "/lift.generator.v1.GeneratorService/PromoteAdapter": Scope.ADAPTERS,
        "/lift.generator.v1.GeneratorService/PinAdapter": Scope.ADAPTERS,
        "/lift.generator.v1.GeneratorService/GetInfo": ANY_TOKEN,
        "POST /v1/generations": Scope.GENERATE,
        "POST /v1/adapters": Scope.ADAPTERS,
        "POST /v1/adapters/{version}:promote": Scope.ADAPTERS,
        "POST /v1/adapters/{version}:pin": Scope.ADAPTERS,
        "POST /v1/adapters/{version}:unpin": Scope.ADAPTERS,
        "GET /v1/adapters": ANY_TOKEN,
        "GET /v1/info": ANY_TOKEN,
    },
    "trainer": {
        "/lift.trainer.v1.TrainerService/StartRun": Scope.RUNS,
        "/lift.trainer.v1.TrainerService/GetRun": Scope.RUNS,
        "/lift.trainer.v1.TrainerService/ListRuns": Scope.RUNS,
        "/lift.trainer.v1.TrainerService/CancelRun": Scope.RUNS,
        "/lift.trainer.v1.TrainerService/WatchRun": Scope.RUNS,
        "/lift.trainer.v1.TrainerService/GetInfo": ANY_TOKEN,
        "POST /v1/runs": Scope.RUNS,
        "GET /v1/runs": Scope.RUNS,
        "GET /v1/runs/{run_id}": Scope.RUNS,
        "POST /v1/runs/{run_id}:cancel": Scope.RUNS,
        "GET /v1/runs/{run_id}/events": Scope.RUNS,
        "GET /v1/info": ANY_TOKEN,
    },
    # The pages (/, /overview, /static/*) are open: they hold no data and ask for a token.
    "feedback": {
        "GET /v1/me": Scope.RATE,
        "GET /v1/next": Scope.RATE,
        "GET /v1/items/{item_id}/video": Scope.RATE,
        "POST /v1/ratings": Scope.RATE,
        "POST /v1/items/{item_id}:skip": Scope.RATE,
        "POST /v1/items/{item_id}:flag": Scope.RATE,
        "POST /v1/undo": Scope.RATE,
        "GET /v1/overview": Scope.ADMIN,
        "POST /v1/items": Scope.ADMIN,
        "GET /v1/info": ANY_TOKEN,
    },
}
"""Per service: gRPC full method or HTTP ``"METHOD /route"`` → the scope it needs."""


COMMON_ACCESS: Final[Mapping[str, Rule]] = {
    "GET /metrics": ANY_TOKEN,
    "GET /docs": ANY_TOKEN,
    "GET /redoc": ANY_TOKEN,
    "GET /openapi.json": ANY_TOKEN,
}
"""What every service's shared routes need when the settings do not open them."""


def required_scope(service: str, call: str) -> Rule:
    """The scope ``call`` needs on ``service``; ``admin`` for calls the table does not list."""
    table = ACCESS.get(service, {})
    if call in table:
        return table[call]
    return COMMON_ACCESS.get(call, Scope.ADMIN)


class TokenEntry(BaseModel):
    """One token of the tokens file: who holds it, what it may do, its hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._@-]+$")
    scopes: tuple[Scope, ...] = Field(..., min_length=1)
    hash: str = Field(..., pattern=r"^sha256:[0-9a-f]{64}$")


class TokensFile(BaseModel):
    """The tokens file's JSON: ``{"tokens": [TokenEntry, ...]}``."""

    model_config = ConfigDict(extra="forbid")

    tokens: list[TokenEntry] = Field(default_factory=list)

    @field_validator("tokens")
    @classmethod
    def _unique_names(cls, v: list[TokenEntry]) -> list[TokenEntry]:
        names = [t.name for t in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"token names must be unique; repeated: {', '.join(sorted(dup))}")
        return v


class AuthFileError(ValueError):
    """The tokens file cannot be used; the message names the file and what to fix."""


def hash_token(token: str) -> str:
    """The stored form of a token: ``sha256:<hex>``."""
    return _HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh token: ``lift_`` + urlsafe base64 of 32 random bytes (256 bits)."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def read_tokens_file(path: Path) -> TokensFile:
    """Read and check a tokens file; AuthFileError says what is wrong with it.

    Refused: a file others may write (anyone could add a token), not a regular file,
    not JSON, or entries that do not validate (unknown scope, bad hash, repeated name).
    """
    try:
        st = path.stat()
    except OSError as exc:
        raise AuthFileError(f"cannot read the tokens file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise AuthFileError(f"the tokens file {path} is not a regular file")
    if st.st_mode & (stat.S_IWOTH | stat.S_IWGRP):
        raise AuthFileError(
            f"the tokens file {path} is writable by other users (anyone could add a token); "
            f"run: chmod 600 {path}"
        )
    try:
        raw = path.read_bytes()
        return TokensFile.model_validate_json(raw)
    except OSError as exc:
        raise AuthFileError(f"cannot read the tokens file {path}: {exc.strerror}") from None
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise AuthFileError(
            f"the tokens file {path} is malformed ({problems}); expected "
            '{"tokens": [{"name", "scopes", "hash": "sha256:<hex>"}]} as `lift auth add` writes'
        ) from None


def write_tokens_file(path: Path, tokens: TokensFile) -> None:
    """Write the tokens file atomically (temp file + rename) with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)  # mkstemp already makes 0600; say so rather than rely on it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tokens.model_dump_json(indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_token(path: Path, name: str, scopes: Iterable[Scope], replace: bool = False) -> str:
    """Make a token for ``name`` with ``scopes``, store its hash in ``path``; the token.

    The file is created if missing. A name already present is refused (ValueError)
    unless ``replace``, which revokes the old token of that name.
    """
    current = read_tokens_file(path) if path.exists() else TokensFile()
    if any(t.name == name for t in current.tokens) and not replace:
        raise ValueError(f"a token named {name!r} already exists in {path}; pass --replace")
    token = new_token()
    entry = TokenEntry(name=name, scopes=tuple(dict.fromkeys(scopes)), hash=hash_token(token))
    kept = [t for t in current.tokens if t.name != name]
    write_tokens_file(path, TokensFile(tokens=[*kept, entry]))
    return token


@dataclass(frozen=True)
class Caller:
    """Who made a call: the token's name and scopes."""

    name: str
    scopes: frozenset[Scope]

    def may(self, rule: Rule) -> bool:
        """True when the caller holds ``rule``'s scope (or admin; any token for ANY_TOKEN)."""
        return rule is None or Scope.ADMIN in self.scopes or rule in self.scopes


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value; None when absent or malformed."""
    if not authorization:
        return None
    kind, _, token = authorization.strip().partition(" ")
    token = token.strip()
    return token if kind.lower() == "bearer" and token else None


class Authenticator:
    """Checks bearer tokens against a tokens file, re-read when the file changes.

    Editing the file (``lift auth add``, removing a line to revoke a token) takes effect
    within :attr:`RECHECK_S` without a restart. A file that turns malformed while the
    service runs is logged and the last good tokens stay in force.
    """

    RECHECK_S: Final = 1.0

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries = read_tokens_file(path).tokens  # refused at start-up if unusable
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def _file_stamp(self) -> tuple[float, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime, st.st_size, st.st_ino

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.RECHECK_S:
            return
        with self._lock:
            self._checked = now
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                self._entries = read_tokens_file(self.path).tokens
                log.info("tokens file %s re-read: %d tokens", self.path, len(self._entries))
            except AuthFileError as exc:
                log.error("%s; keeping the %d tokens read before", exc, len(self._entries))

    def authenticate(self, token: str | None) -> Caller | None:
        """The caller a token belongs to, or None for no or an unknown token."""
        if not token:
            return None
        self._refresh()
        presented = hash_token(token).encode()
        found: TokenEntry | None = None
        for entry in self._entries:  # no early exit: the time does not depend on the match
            if hmac.compare_digest(presented, entry.hash.encode()):
                found = entry
        return Caller(found.name, frozenset(found.scopes)) if found is not None else None


class Decision(StrEnum):
    """The outcome of an access check."""

    ALLOW = "allow"
    UNAUTHENTICATED = "unauthenticated"
    DENIED = "denied"


def check(auth: Authenticator, token: str | None, rule: Rule) -> tuple[Decision, str]:
    """Whether a call with ``token`` that needs ``rule`` may go on, and the sentence to answer."""
    caller = auth.authenticate(token)
    if caller is None:
        what = "no bearer token was sent" if not token else "the bearer token is not valid"
        return Decision.UNAUTHENTICATED, (
            f"{what}; send 'authorization: Bearer <token>' (clients: --token or LIFT_TOKEN)"
        )
    if not caller.may(rule):
        need = rule.value if rule is not None else Scope.ADMIN.value
        return (
            Decision.DENIED,
            f"the token {caller.name!r} lacks the {need!r} scope this call needs",
        )
    return Decision.ALLOW, ""


LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "::1", "localhost", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True when a bind host only listens on this machine."""
    return host.strip("[]").lower() in LOOPBACK_HOSTS or host.startswith("127.")
