"""The trainer's calls to the generator and the critic: replicas, deadlines, retries, outages.

A dependency is one server or several replicas (:class:`ReplicaPool`): the
configured addresses and, with ``resolve``, every IP address their host names
resolve to (a Kubernetes headless Service; looked up again every
``resolve_every_s`` and whenever no replica is left). Calls go to the replica with
the fewest calls in flight; a step's videos are generated, and a long evaluation
scored, on all replicas at once, and the results come back in the caller's order.
Generation is seeded per request and scoring is deterministic, so a run's result
does not depend on which replica served what.

Every call has a deadline (``timeout_s``). A transient failure (unreachable,
overloaded, deadline passed) moves the call to another replica, or retries it with
exponential backoff when there is none; a replica that keeps failing past
``retries`` or for ``down_after_s`` is set aside as down (its work goes to the
others) and tried again after ``retry_down_after_s``. The run fails only when no
replica is left, with a reason that names each address and its last error. A
refusal (bad argument) is not retried: retrying cannot fix it. Cancelling the run
interrupts the backoff waits.

Adapters: :meth:`Services.publish` installs a version on every live generator
replica before any replica is asked for it; a replica that missed it (down at the
time, or restarted since) is caught up with the same version before it serves a
request naming it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from typing import Any, Generic, Protocol, TypeVar

from lift.client import (
    AdapterNotFound,
    ClientError,
    Credentials,
    CriticClient,
    CriticError,
    GeneratorClient,
)
from lift.critique import Critique
from lift.errors import Cancelled, LiftError
from lift.generation import AdapterFiles, GenerationRequest
from lift.services.trainer import metrics
from lift.services.trainer.access import HOST_PORT
from lift.services.trainer.config import EndpointConfig
from lift.services.trainer.settings import TrainerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
C = TypeVar("C", bound="_Closable")

TRANSIENT = {
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "ABORTED",
    "UNKNOWN",
    # The trainer never cancels its own calls: a CANCELLED status is a server that
    # stopped (or restarted) under the call.
    "CANCELLED",
}
KEEP_ADAPTERS = 2
"""Published adapter versions kept in memory to catch up a replica that missed one."""
WAIT_SLICE_S = 0.2
"""Longest single wait for a replica in backoff (a cancel is seen within it)."""


class DependencyFailed(LiftError):
    """A dependency failed in a way that ends the run; the message is the run's reason."""


class AdapterMissing(DependencyFailed):
    """The generator does not hold the adapter version a request named (status NOT_FOUND).

    It restarted or evicted the version; the run can publish it again and retry.
    """


class ReplicaDown(DependencyFailed):
    """A call meant for one replica (a publish) cannot reach it: it is down."""


class _Closable(Protocol):
    def close(self) -> None: ...


class Replica(Generic[C]):
    """One server of a dependency: its client and its failure state."""

    def __init__(self, address: str, label: str, client: C, backoff_s: float) -> None:
        self.address = address
        """host:port dialled."""
        self.label = label
        """How messages name it: the address, and the name it was resolved from."""
        self.client = client
        self.outstanding = 0
        self.served = 0
        self.failures = 0
        self.failing_since: float | None = None
        self.delay = backoff_s
        self.next_try = 0.0
        self.down = False
        self.removed = False
        self.last_error = "no call failed"
        self.versions: set[str] = set()
        """Adapter versions this replica is known to hold (generator)."""
        self.succeeded: Counter[str] = Counter()
        """Successful calls by method (what it served)."""


Resolver = Callable[..., list[tuple[Any, ...]]]


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class ReplicaPool(Generic[C]):
    """The replicas of one dependency behind its deadline, retry and outage policy."""

    def __init__(
        self,
        name: str,
        endpoint: EndpointConfig,
        stop: threading.Event,
        connect: Callable[..., C],
        resolver: Resolver | None = None,
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.stop = stop
        self._connect = connect
        self._resolver: Resolver = resolver or socket.getaddrinfo
        self._cond = threading.Condition()
        self._replicas: dict[str, Replica[C]] = {}
        self._retired: list[C] = []
        self._resolved_at = float("-inf")
        # A config built elsewhere (tests, older callers) may carry one address only.
        targets = getattr(endpoint, "targets", None)
        self._targets: list[str] = targets() if targets else [endpoint.address]
        self._resolve: bool = bool(getattr(endpoint, "resolve", False))
        self._resolve_every_s: float = float(getattr(endpoint, "resolve_every_s", 30.0))
        self._retry_down_after_s: float = float(getattr(endpoint, "retry_down_after_s", 30.0))
        with self._cond:
            self._refresh()

    # ---- membership -------------------------------------------------------------------

    def _lookup(self, target: str) -> list[tuple[str, str]]:
        """(address, label) of each replica ``target`` stands for (one unless resolved)."""
        m = HOST_PORT.fullmatch(target)
        if not self._resolve or m is None:
            return [(target, target)]
        host, port = m.group(1).strip("[]"), m.group(2)
        try:
            infos = self._resolver(host, int(port), type=socket.SOCK_STREAM)
            ips = sorted({str(info[4][0]) for info in infos})
        except (OSError, UnicodeError, ValueError) as exc:
            known = [(r.address, r.label) for r in self._replicas.values() if r.label == target]
            known += [
                (r.address, r.label)
                for r in self._replicas.values()
                if r.label.endswith(f"({target})")
            ]
            log.warning("%s: cannot resolve %s (%s); keeping %d replica(s)", self.name, target,
                        exc, len(known))  # fmt: skip
            return known or [(target, target)]
        if not ips or all(_is_loopback(ip) for ip in ips):
            return [(target, target)]  # one local server, however many loopback spellings
        return [
            (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}", f"{ip} ({target})") for ip in ips
        ]

    def _refresh(self) -> None:
        """Bring the replica set up to date (under the lock)."""
        wanted: dict[str, str] = {}
        names: dict[str, str] = {}  # a resolved address: the host name it came from
        for target in self._targets:
            for address, label in self._lookup(target):
                wanted.setdefault(address, label)
                if address != target and (m := HOST_PORT.fullmatch(target)):
                    names.setdefault(address, m.group(1))
        joined = self._resolved_at > float("-inf")  # not the first look-up
        self._resolved_at = time.monotonic()
        for address, replica in list(self._replicas.items()):
            if address not in wanted:
                log.info("%s replica %s is gone from the name's addresses", self.name, address)
                replica.removed = True
                self._retired.append(replica.client)
                del self._replicas[address]
        for address, label in wanted.items():
            if address not in self._replicas:
                if joined:
                    log.info("%s replica %s joined", self.name, label)
                # A resolved replica is dialled by IP; TLS still checks the name's certificate.
                host = names.get(address)
                client = self._connect(address, host) if host else self._connect(address)
                self._replicas[address] = Replica(address, label, client, self.endpoint.backoff_s)
        self._cond.notify_all()

    def replicas(self) -> list[Replica[C]]:
        """The current replicas (a snapshot)."""
        with self._cond:
            return list(self._replicas.values())

    def live(self) -> list[Replica[C]]:
        """Replicas not set aside as down."""
        return [r for r in self.replicas() if not r.down]

    def close(self) -> None:
        """Close every connection."""
        with self._cond:
            clients = [r.client for r in self._replicas.values()] + self._retired
            self._retired = []
        for client in clients:
            client.close()

    # ---- choosing a replica ---------------------------------------------------------

    def _none_left(self, what: str) -> str:
        everyone = list(self._replicas.values())
        if len(everyone) == 1:
            r = everyone[0]
            return f"{self.name} ({r.label}) {r.last_error}; is it running?"
        listed = "; ".join(f"{r.label} {r.last_error}" for r in everyone)
        return f"no {self.name} replica is left for {what} ({listed}); are they running?"

    def _acquire(self, what: str, pinned: Replica[C] | None) -> Replica[C]:
        """A replica to call (the least busy ready one), counted as in flight."""
        refreshed = False
        with self._cond:
            while True:
                if self.stop.is_set():
                    raise Cancelled("the run was cancelled")
                now = time.monotonic()
                if self._resolve and now - self._resolved_at >= self._resolve_every_s:
                    self._refresh()
                pool = [pinned] if pinned is not None else list(self._replicas.values())
                for r in pool:
                    if r.down and now >= r.next_try and not r.removed:
                        # Tried again: one more failure sets it aside again.
                        log.info("%s replica %s: trying it again", self.name, r.label)
                        r.down, r.failures = False, self.endpoint.retries
                        r.failing_since, r.delay = now, self.endpoint.backoff_s
                up = [r for r in pool if not r.down and not r.removed]
                ready = [r for r in up if r.next_try <= now]
                if ready:
                    r = min(ready, key=lambda r: (r.outstanding, r.served))
                    r.outstanding += 1
                    r.served += 1
                    return r
                if up:  # every live replica is in backoff: wait for the first
                    wait = min(r.next_try for r in up) - now
                    self._cond.wait(min(max(wait, 0.0), WAIT_SLICE_S))
                    continue
                if pinned is not None:
                    raise ReplicaDown(f"{self.name} ({pinned.label}) {pinned.last_error}")
                if self._resolve and not refreshed:
                    refreshed = True
                    self._refresh()
                    continue
                raise DependencyFailed(self._none_left(what))

    def _release(self, r: Replica[C]) -> None:
        with self._cond:
            r.outstanding -= 1
            self._cond.notify_all()

    def _failed(self, r: Replica[C], what: str, code: str, message: str, started: float) -> None:
        with self._cond:
            r.outstanding -= 1
            now = time.monotonic()
            r.failing_since = r.failing_since or started
            down_for = now - r.failing_since
            r.last_error = (
                f"{what} failed {r.failures + 1} times over {down_for:.1f} s "
                f"(last: {code}: {message or 'no details'})"
            )
            if (
                r.failures >= self.endpoint.retries
                or down_for + r.delay > self.endpoint.down_after_s
            ):
                r.down = True
                r.next_try = now + self._retry_down_after_s
                r.versions.clear()  # when it comes back it may have restarted
                if self._resolve:  # look the names up again: a replacement may be there
                    self._resolved_at = float("-inf")
                others = sum(not x.down for x in self._replicas.values())
                log.warning(
                    "%s replica %s is down (%s); %d other(s) left, trying it again in %.0f s",
                    self.name, r.label, r.last_error, others, self._retry_down_after_s,
                )  # fmt: skip
            else:
                log.warning("%s (%s) %s failed (%s); retry %d in %.1f s",
                            self.name, r.label, what, code, r.failures + 1, r.delay)  # fmt: skip
                r.next_try = now + r.delay
                r.failures += 1
                r.delay *= 2
            self._cond.notify_all()

    def _succeeded(self, r: Replica[C]) -> None:
        with self._cond:
            r.outstanding -= 1
            r.failures, r.failing_since, r.delay = 0, None, self.endpoint.backoff_s
            self._cond.notify_all()

    # ---- calls ------------------------------------------------------------------------

    def call(
        self, what: str, fn: Callable[[Replica[C]], T], replica: Replica[C] | None = None
    ) -> T:
        """``fn(replica)`` on a chosen replica (or ``replica``), with retries and failover.

        Raises DependencyFailed (ReplicaDown when ``replica`` is down) or Cancelled.
        """
        while True:
            r = self._acquire(what, replica)
            started = time.monotonic()
            try:
                result = fn(r)
            except AdapterNotFound as exc:
                # Not a failure of the generator: the caller decides (re-publish).
                self._release(r)
                raise AdapterMissing(f"{self.name} ({r.label}) {what}: {exc.message}") from None
            except ClientError as exc:
                code, message = exc.code, exc.message
            except BaseException:
                self._release(r)
                raise
            else:
                self._succeeded(r)
                r.succeeded[what] += 1
                metrics.DEPENDENCY_SECONDS.labels(self.name, r.address).observe(
                    time.monotonic() - started
                )
                return result
            metrics.DEPENDENCY_ERRORS.labels(self.name, r.address, code).inc()
            if code not in TRANSIENT:
                self._release(r)
                raise DependencyFailed(f"{self.name} ({r.label}) {what} refused: {code}: {message}")
            self._failed(r, what, code, message, started)

    def each(self, what: str, fn: Callable[[Replica[C]], T]) -> list[Replica[C]]:
        """``fn`` on every live replica at once; the replicas it reached.

        A replica that is (or goes) down misses the call; a refusal from any replica
        raises; no replica reached raises DependencyFailed naming them all.
        """
        with self._cond:
            if self._resolve:
                self._refresh()
            targets = [r for r in self._replicas.values() if not r.down]
        reached: list[Replica[C]] = []

        def one(r: Replica[C]) -> None:
            self.call(what, fn, replica=r)
            reached.append(r)

        failures = _run_all([functools.partial(one, r) for r in targets])
        missed = [e for e in failures if isinstance(e, ReplicaDown)]
        for e in failures:
            if not isinstance(e, ReplicaDown):
                raise e
        for e in missed:
            log.warning("%s: %s missed %s; it is caught up when it is back", self.name, e, what)
        if not reached:
            with self._cond:
                raise DependencyFailed(self._none_left(what))
        return reached

    def map(self, what: str, fn: Callable[[Replica[C], T], Any], items: Sequence[T],
            progress: Callable[[int], None] | None = None) -> list[Any]:  # fmt: skip
        """``fn(replica, item)`` for every item, spread over the replicas; results in order.

        ``progress(done)`` is called in the caller's thread as items finish.
        """
        calls = [functools.partial(self.call, what, functools.partial(_flip, fn, i)) for i in items]
        workers = min(len(calls), max(1, len(self.live())))
        if workers <= 1:
            out = []
            for n, c in enumerate(calls, 1):
                out.append(c())
                if progress is not None:
                    progress(n)
            return out
        with ThreadPoolExecutor(workers, thread_name_prefix=f"trainer-{self.name}") as ex:
            futures = [ex.submit(c) for c in calls]
            try:
                for n, _ in enumerate(as_completed(futures), 1):
                    if progress is not None:
                        progress(n)
                return [f.result() for f in futures]
            finally:
                for f in futures:
                    f.cancel()  # a failure: what has not started never starts


def _flip(fn: Callable[[Any, Any], Any], item: Any, replica: Any) -> Any:
    return fn(replica, item)


def _run_all(calls: list[Callable[[], None]]) -> list[BaseException]:
    """Run ``calls`` at once (inline when one); the exceptions they raised."""
    if len(calls) == 1:
        try:
            calls[0]()
        except Exception as exc:  # handed back to the caller
            return [exc]
        return []
    with ThreadPoolExecutor(max(1, len(calls)), thread_name_prefix="trainer-each") as ex:
        futures: list[Future[None]] = [ex.submit(c) for c in calls]
    return [e for f in futures if (e := f.exception()) is not None]


def client_credentials(settings: TrainerSettings) -> Credentials:
    """The trainer's own token and TLS towards the generator and critic.

    Built from the trainer's settings only: not from LIFT_TOKEN (the operator's shell)
    and never from the caller who started the run.
    """
    token = settings.client_token.get_secret_value() if settings.client_token else None
    if settings.client_token_file is not None:
        try:
            token = settings.client_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DependencyFailed(
                f"cannot read the trainer's client token file: {exc.strerror}"
            ) from None
    try:
        return Credentials.create(
            token,
            tls=settings.client_tls,
            ca_file=settings.client_ca_file,
            client_cert=settings.client_cert_file,
            client_key=settings.client_key_file,
        )
    except (OSError, ValueError) as exc:
        raise DependencyFailed(f"cannot set up TLS towards the services: {exc}") from None


class Services:
    """The generator and critic replicas of an online run, behind retries."""

    def __init__(
        self,
        generator: EndpointConfig,
        critic: EndpointConfig,
        stop: threading.Event,
        credentials: Credentials | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        # No credentials: none at all (an explicit empty set, so the clients do not fall
        # back to LIFT_TOKEN from the environment).
        creds = credentials if credentials is not None else Credentials()
        self.generator: ReplicaPool[GeneratorClient] = ReplicaPool(
            "generator",
            generator,
            stop,
            lambda a, host=None: GeneratorClient(
                a, timeout_s=generator.timeout_s, credentials=creds.with_tls_name(host)
            ),
            resolver,
        )
        self.critic: ReplicaPool[CriticClient] = ReplicaPool(
            "critic",
            critic,
            stop,
            lambda a, host=None: CriticClient(
                a, timeout_s=critic.timeout_s, credentials=creds.with_tls_name(host)
            ),
            resolver,
        )
        self._adapters: dict[str, AdapterFiles] = {}
        self._critic_batch: int | None = None

    def close(self) -> None:
        """Close every connection."""
        self.generator.close()
        self.critic.close()

    def generator_info(self) -> dict[str, object]:
        """A generator replica's GetInfo as a dict."""
        return self.generator.call("GetInfo", lambda r: r.client.info())

    # ---- generation and adapters ------------------------------------------------------

    def _install(self, r: Replica[GeneratorClient], version: str) -> None:
        """Load ``version`` on ``r`` (a publish, or catching up a replica that missed it)."""
        files = self._adapters[version]
        try:
            r.client.load_adapter(version, files.weights, files.config_json, pin=False)
        except ClientError as exc:
            # A load that went through although its answer was lost (a timeout, a
            # restart of the connection) is refused as a reused label: it is there.
            held = exc.code == "INVALID_ARGUMENT" and version in {
                str(a.get("version")) for a in r.client.info().get("adapters", [])
            }
            if not held:
                raise
        r.versions.add(version)

    def _generate_on(self, request: GenerationRequest, r: Replica[GeneratorClient]) -> bytes:
        version = request.adapter_version
        if version in self._adapters and version not in r.versions:
            log.info("generator replica %s: catching it up with %s", r.label, version)
            self._install(r, version)
        try:
            return r.client.generate(request).data
        except AdapterNotFound:
            if version not in self._adapters:
                raise
            # The replica restarted since it got the version: install it again.
            log.info("generator replica %s lost %s; installing it again", r.label, version)
            r.versions.discard(version)
            self._install(r, version)
            return r.client.generate(request).data

    def generate(self, request: GenerationRequest) -> bytes:
        """One video's bytes (from the least busy generator replica)."""
        return self.generator.call("Generate", functools.partial(self._generate_on, request))

    def generate_many(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[bytes]:
        """Videos of ``requests``, in their order, generated on all replicas at once."""
        return self.generator.map("Generate", self._generate_on_item, requests, progress)

    def _generate_on_item(self, r: Replica[GeneratorClient], request: GenerationRequest) -> bytes:
        return self._generate_on(request, r)

    def publish(self, version: str, files: AdapterFiles) -> None:
        """Install an adapter version on every generator replica (unpinned; defaults stay).

        Returns once every live replica holds it; one that is down misses it and is
        caught up before it next serves a request naming it.
        """
        self._adapters[version] = files
        for old in list(self._adapters)[:-KEEP_ADAPTERS]:
            del self._adapters[old]
        self.generator.each("LoadAdapter", lambda r: self._install(r, version))

    def promote(self, version: str) -> None:
        """Make ``version`` the default of every generator replica (on success only)."""
        reached = self.generator.each("PromoteAdapter", lambda r: r.client.promote(version))
        missed = len(self.generator.replicas()) - len(reached)
        if missed:
            log.warning("%d generator replica(s) were down and keep their default", missed)

    # ---- scoring ----------------------------------------------------------------------

    def _critic_batch_limit(self) -> int:
        """Most items the critic takes in one Score call (its GetInfo; asked once)."""
        if self._critic_batch is None:
            info = self.critic.call("GetInfo", lambda r: r.client.info())
            self._critic_batch = max(1, int(info.get("limits", {}).get("max_batch_items") or 1))
        return self._critic_batch

    def score(self, items: list[tuple[bytes, str]]) -> list[Critique]:
        """Critiques (no reasons) of a batch; an item the critic refuses fails the run.

        More items than the critic takes in one call (a held-out evaluation of more
        videos than its ``max_batch_items``) go in several calls, spread over the
        critic replicas; the critiques come back in the items' order.
        """
        limit = self._critic_batch_limit() if len(items) > 1 else 1
        chunks = [items[start : start + limit] for start in range(0, len(items), limit)]
        results: list[Critique | CriticError] = []
        for part in self.critic.map("Score", lambda r, chunk: r.client.score(chunk), chunks):
            results += part
        out = []
        for i, res in enumerate(results):
            if isinstance(res, CriticError):
                raise DependencyFailed(
                    f"critic refused generated video {i}: {res.code}: {res.message}"
                )
            out.append(res)
        return out
