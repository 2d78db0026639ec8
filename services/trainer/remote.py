"""The trainer's calls to the generator and the critic: deadlines, retries, outage limits.

Every call has a deadline (``timeout_s``). A transient failure (unreachable,
overloaded, deadline passed) is retried with exponential backoff; a dependency
that keeps failing for ``down_after_s`` (or past ``retries``) fails the run with
a reason that names it. A refusal (bad argument) is not retried: retrying cannot
fix it. Cancelling the run interrupts the backoff waits.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

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
from lift.services.trainer.config import EndpointConfig
from lift.services.trainer.settings import TrainerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "UNKNOWN"}


class DependencyFailed(LiftError):
    """A dependency failed in a way that ends the run; the message is the run's reason."""


class AdapterMissing(DependencyFailed):
    """The generator does not hold the adapter version a request named (status NOT_FOUND).

    It restarted or evicted the version; the run can publish it again and retry.
    """


class Retrying:
    """Runs calls to one dependency with its deadline, retry and outage policy."""

    def __init__(self, name: str, endpoint: EndpointConfig, stop: threading.Event) -> None:
        self.name = name
        self.endpoint = endpoint
        self.stop = stop
        self._failing_since: float | None = None

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()`` with retries; raises DependencyFailed or Cancelled."""
        delay = self.endpoint.backoff_s
        attempt = 0
        while True:
            if self.stop.is_set():
                raise Cancelled("the run was cancelled")
            started = time.monotonic()
            try:
                result = fn()
            except AdapterNotFound as exc:
                # Not a failure of the generator: the caller decides (re-publish).
                where = f"{self.name} ({self.endpoint.address}) {what}"
                raise AdapterMissing(f"{where}: {exc.message}") from None
            except ClientError as exc:
                code, message = exc.code, exc.message
            else:
                self._failing_since = None
                metrics.DEPENDENCY_SECONDS.labels(self.name).observe(time.monotonic() - started)
                return result
            metrics.DEPENDENCY_ERRORS.labels(self.name, code).inc()
            where = f"{self.name} ({self.endpoint.address}) {what}"
            if code not in TRANSIENT:
                raise DependencyFailed(f"{where} refused: {code}: {message}")
            now = time.monotonic()
            self._failing_since = self._failing_since or started
            down_for = now - self._failing_since
            if attempt >= self.endpoint.retries or down_for + delay > self.endpoint.down_after_s:
                raise DependencyFailed(
                    f"{where} failed {attempt + 1} times over {down_for:.1f} s "
                    f"(last: {code}: {message or 'no details'}); is it running?"
                )
            log.warning("%s failed (%s); retry %d in %.1f s", where, code, attempt + 1, delay)
            if self.stop.wait(delay):
                raise Cancelled("the run was cancelled")
            attempt += 1
            delay *= 2


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
    """The generator and critic of an online run, behind retries."""

    def __init__(
        self,
        generator: EndpointConfig,
        critic: EndpointConfig,
        stop: threading.Event,
        credentials: Credentials | None = None,
    ) -> None:
        # No credentials: none at all (an explicit empty set, so the clients do not fall
        # back to LIFT_TOKEN from the environment).
        creds = credentials if credentials is not None else Credentials()
        self._gen = GeneratorClient(
            generator.address, timeout_s=generator.timeout_s, credentials=creds
        )
        self._critic = CriticClient(critic.address, timeout_s=critic.timeout_s, credentials=creds)
        self.generator = Retrying("generator", generator, stop)
        self.critic = Retrying("critic", critic, stop)
        self._critic_batch: int | None = None

    def close(self) -> None:
        """Close both connections."""
        self._gen.close()
        self._critic.close()

    def generator_info(self) -> dict[str, object]:
        """The generator's GetInfo as a dict."""
        return self.generator.call("GetInfo", self._gen.info)

    def generate(self, request: GenerationRequest) -> bytes:
        """One video's bytes."""
        return self.generator.call("Generate", lambda: self._gen.generate(request).data)

    def publish(self, version: str, files: AdapterFiles) -> None:
        """Install an adapter version on the generator (unpinned; the default stays)."""
        self.generator.call(
            "LoadAdapter",
            lambda: self._gen.load_adapter(version, files.weights, files.config_json, pin=False),
        )

    def promote(self, version: str) -> None:
        """Make ``version`` the generator's default (a run that asked, on success only)."""
        self.generator.call("PromoteAdapter", lambda: self._gen.promote(version))

    def _critic_batch_limit(self) -> int:
        """Most items the critic takes in one Score call (its GetInfo; asked once)."""
        if self._critic_batch is None:
            info = self.critic.call("GetInfo", self._critic.info)
            self._critic_batch = max(1, int(info.get("limits", {}).get("max_batch_items") or 1))
        return self._critic_batch

    def score(self, items: list[tuple[bytes, str]]) -> list[Critique]:
        """Critiques (no reasons) of a batch; an item the critic refuses fails the run.

        More items than the critic takes in one call (a held-out evaluation of
        more videos than its ``max_batch_items``) go in several calls, in order.
        """
        limit = self._critic_batch_limit() if len(items) > 1 else 1
        results: list[Critique | CriticError] = []
        for start in range(0, len(items), limit):
            chunk = items[start : start + limit]
            results += self.critic.call("Score", functools.partial(self._critic.score, chunk))
        out = []
        for i, r in enumerate(results):
            if isinstance(r, CriticError):
                raise DependencyFailed(f"critic refused generated video {i}: {r.code}: {r.message}")
            out.append(r)
        return out
