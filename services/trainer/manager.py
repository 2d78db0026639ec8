"""The trainer's engine: accepts runs, trains them on worker threads, survives restarts.

Every state change and event is committed to SQLite before anyone is told, so
what a watcher saw is what a restarted trainer finds. On start-up, runs that were
running when the process died are resumed from their last checkpoint (at most
``max_crash_resumes`` times: a run that keeps killing the trainer ends failed),
and queued runs are queued again, in the order they were submitted.

A run touches only what the operator allows (:mod:`lift.services.trainer.access`):
its paths are checked against the data roots and its endpoints against the
allow-list when it is submitted, and again when it starts or resumes. Cancelling a
running run ends it at once (``cancelled``); its worker stops at its next check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import queue
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lift import __version__
from lift.clients.base import Credentials
from lift.errors import Cancelled, Conflict, InvalidInput, LiftError, NotFound, NotReady, Overloaded
from lift.runs import Event, RunState, is_final_event
from lift.services.trainer import metrics
from lift.services.trainer.access import DataRoots, Endpoints
from lift.services.trainer.config import RunConfig, parse_run_config, validation_message
from lift.services.trainer.data import DataAccess
from lift.services.trainer.loop import AlignmentLoop, Dependencies
from lift.services.trainer.remote import Services, client_credentials
from lift.services.trainer.settings import TrainerSettings
from lift.services.trainer.store import RunRecord, Store

log = logging.getLogger(__name__)

FOLLOW_POLL_S = 0.2
DepsFactory = Callable[[RunConfig, threading.Event], Dependencies | None]


def default_deps(
    config: RunConfig, stop: threading.Event, credentials: Credentials | None = None
) -> Dependencies | None:
    """gRPC clients for the run's generator and critic (None when it needs neither).

    ``credentials`` are the trainer's own (:func:`client_credentials`), never a caller's.
    """
    needs = config.mode == "online" or bool(config.eval.prompts)
    if not needs or config.generator is None or config.critic is None:
        return None
    return Services(config.generator, config.critic, stop, credentials)


def new_run_id() -> str:
    """A sortable, unique id that is also a valid adapter version label prefix."""
    return time.strftime("run-%Y%m%d-%H%M%S-", time.gmtime()) + secrets.token_hex(3)


class RunManager:
    """Runs, their lifecycle and their events; thread-safe."""

    def __init__(self, settings: TrainerSettings, deps_factory: DepsFactory | None = None) -> None:
        self.settings = settings
        self.deps_factory = deps_factory or (
            lambda config, stop: default_deps(config, stop, client_credentials(settings))
        )
        self.store: Store | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stops: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.ready = False
        self.run_metrics = metrics.RunMetrics(
            lambda: self.store.count_by_state() if self.store else {}
        )
        self._subscribers: list[Callable[[Event], None]] = [self.run_metrics.observe]
        """Called with every event once it is stored (the Prometheus metrics, first)."""
        data = settings.data_dir
        # The trainer's own files stay off limits even under a root: the database holds
        # every run's config and events, runs/ every run's checkpoints and adapters.
        internal = [data / "runs", *(data / f"trainer.sqlite{x}" for x in ("", "-wal", "-shm"))]
        self.access = DataAccess(
            DataRoots.of(settings.roots(), exclude=internal),
            max_prompts_file_bytes=settings.max_prompts_file_bytes,
            max_file_bytes=settings.max_data_file_bytes,
            max_dataset_bytes=settings.max_dataset_bytes,
        )
        self.endpoints = Endpoints.of(settings.endpoints())

    # ---- lifecycle ------------------------------------------------------------------

    def load(self) -> None:
        """Open the database, requeue unfinished runs, start the workers."""
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.settings.data_roots:  # the default root: where operators put run data
            (self.settings.data_dir / "inputs").mkdir(exist_ok=True)
        self.store = Store(self.settings.data_dir / "trainer.sqlite")
        unfinished = [
            r
            for r in reversed(self.store.runs(limit=1_000_000))
            if r.state in (RunState.RUNNING, RunState.QUEUED)
        ]
        for run in list(unfinished):
            if run.state == RunState.RUNNING:
                # Still "running" at start-up: the trainer died under it (a clean shutdown
                # re-queues). Resume it a bounded number of times: a run that kills the
                # trainer must not kill it again on every restart.
                crashes = run.crashes + 1
                if crashes > self.settings.max_crash_resumes:
                    self.store.update(run.id, crashes=crashes)
                    self._finish(
                        run.id,
                        RunState.FAILED,
                        f"the run crashed the trainer {crashes} times; it is not resumed "
                        f"again (LIFT_TRAINER_MAX_CRASH_RESUMES="
                        f"{self.settings.max_crash_resumes})",
                        run.step,
                    )
                    unfinished.remove(run)
                    continue
                self.store.update(
                    run.id, state=RunState.QUEUED, resumes=run.resumes + 1, crashes=crashes
                )
                self._emit(
                    run.id,
                    "state",
                    run.step,
                    "the trainer restarted; the run will resume from its last checkpoint",
                    {"state": "queued"},
                )
            self._stops[run.id] = threading.Event()
            self._queue.put(run.id)
        for i in range(self.settings.concurrent_runs):
            t = threading.Thread(target=self._worker, name=f"trainer-run-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self.run_metrics.refresh_runs()
        self.ready = True
        if unfinished:
            log.info("requeued %d unfinished run(s)", len(unfinished))

    def close(self) -> None:
        """Stop taking runs; running ones stop at their next step and stay resumable."""
        self.ready = False
        for stop in list(self._stops.values()):
            stop.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout=30)
        if self.store is not None:
            self.store.close()

    def _db(self) -> Store:
        if self.store is None or not self.ready:
            raise NotReady("the trainer is starting; retry shortly")
        return self.store

    # ---- the API --------------------------------------------------------------------

    def start_run(self, source: str | bytes | dict[str, Any]) -> RunRecord:
        """Validate a config and queue a run."""
        store = self._db()
        if isinstance(source, str | bytes) and len(source) > self.settings.max_config_bytes:
            raise InvalidInput(
                f"the run config is {len(source)} bytes; the limit is "
                f"{self.settings.max_config_bytes}"
            )
        config = parse_run_config(source, self._config_defaults())
        self.check_access(config)
        if self._queue.qsize() >= self.settings.max_queued_runs:
            raise Overloaded(
                f"{self._queue.qsize()} runs are waiting already; retry when one has started"
            )
        run_id = new_run_id()
        run = store.create_run(run_id, config.name, config.to_json(), config.steps)
        self._stops[run_id] = threading.Event()
        self._emit(run_id, "state", 0, "queued", {"state": "queued"})
        self._queue.put(run_id)
        return run

    def get_run(self, run_id: str) -> RunRecord:
        """A run by id (NotFound otherwise)."""
        run = self._db().get(run_id)
        if run is None:
            raise NotFound(f"no run has the id {run_id!r}")
        return run

    def list_runs(
        self, state: str = "", limit: int = 100, before: tuple[float, str] | None = None
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one state; ``before`` pages (see Store.runs)."""
        if not 1 <= limit <= 1000:
            raise InvalidInput(f"limit must be between 1 and 1000; got {limit}")
        try:
            wanted = RunState(state) if state else None
        except ValueError:
            names = ", ".join(s.value for s in RunState)
            raise InvalidInput(f"state must be one of {names}; got {state!r}") from None
        return self._db().runs(wanted, limit, before)

    def list_page(
        self, state: str = "", page_size: int = 100, token: str = ""
    ) -> tuple[list[RunRecord], str]:
        """One page of runs, newest first, and the token of the next page ("" on the last).

        Both fronts page through this (gRPC ListRuns, HTTP GET /v1/runs).
        """
        if not 1 <= page_size <= 1000:
            raise InvalidInput(f"page_size must be between 1 and 1000; got {page_size}")
        page = self.list_runs(state, page_size, parse_page_token(token, state))
        if len(page) < page_size:
            return page, ""
        last = page[-1]  # a full page: is there a run after it?
        more = self.list_runs(state, 1, (last.created, last.id))
        return page, page_token(last, state) if more else ""

    def cancel_run(self, run_id: str) -> RunRecord:
        """Cancel a queued or running run: it is ``cancelled`` when this returns.

        A running run's worker is told to stop and abandons the run at its next check
        (between videos, calls and steps); whatever it still reports is dropped, so a
        run stuck in a long step is cancelled all the same.
        """
        run = self.get_run(run_id)
        if run.state.final:
            raise Conflict(f"run {run_id} already {run.state.value}; only unfinished runs cancel")
        with self._lock:
            self._stops.setdefault(run_id, threading.Event()).set()
            run = self.get_run(run_id)
            reason = "cancelled before it started" if run.state == RunState.QUEUED else "cancelled"
            if not self._finish(run_id, RunState.CANCELLED, reason, run.step):
                run = self.get_run(run_id)
                # The worker saw the stop just set and ended the run as cancelled first (it
                # does not take this lock): that is this cancel taking effect. Any other end
                # came before the cancel: say so, as for a final run.
                if run.state != RunState.CANCELLED:
                    raise Conflict(
                        f"run {run_id} already {run.state.value}; only unfinished runs cancel"
                    )
        return self.get_run(run_id)

    def events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        """Events of a run after ``after_seq``."""
        self.get_run(run_id)
        return self._db().events(run_id, after_seq)

    def wait_events(self, run_id: str, after_seq: int, timeout_s: float) -> list[Event]:
        """Events after ``after_seq``, waiting up to ``timeout_s`` for the first one."""
        deadline = time.monotonic() + timeout_s
        while True:
            events = self.events(run_id, after_seq)
            left = deadline - time.monotonic()
            if events or left <= 0:
                return events
            with self._changed:
                self._changed.wait(min(left, 1.0))

    async def follow(self, run_id: str, after_seq: int = 0) -> AsyncIterator[Event]:
        """A run's events after ``after_seq``, live, ending after its final state event."""
        self.get_run(run_id)
        seq = after_seq
        while True:
            events = self.events(run_id, seq)  # an indexed read: cheap enough for the loop
            for e in events:
                seq = e.seq
                yield e
                if is_final_event(e):
                    return
            if not events:
                if self.get_run(run_id).state.final and not self.events(run_id, seq):
                    return
                await asyncio.sleep(FOLLOW_POLL_S)

    def info(self) -> dict[str, Any]:
        """GET /v1/info."""
        counts = self._db().count_by_state()
        return {
            "service": "trainer",
            "suite_version": __version__,
            "data_dir": str(self.settings.data_dir),
            "concurrent_runs": self.settings.concurrent_runs,
            "runs": {s.value: n for s, n in counts.items()},
            "strategies": ["reward_weighted", "rejection_sampling"],
        }

    # ---- internals ------------------------------------------------------------------

    def _emit(self, run_id: str, kind: str, step: int, message: str, data: dict[str, Any]) -> None:
        assert self.store is not None
        event = self.store.add_event(run_id, kind, step, message, data)
        for subscriber in self._subscribers:
            subscriber(event)
        if kind in ("state", "warning", "checkpoint", "publish", "eval", "resumed"):
            log.info("%s [%s] %s", run_id, kind, message)
        with self._changed:
            self._changed.notify_all()

    def _finish(self, run_id: str, state: RunState, reason: str, step: int) -> bool:
        """End a run unless it has ended already (a cancel wins over its worker); True if ended."""
        assert self.store is not None
        if not self.store.finish_unless_final(run_id, state, reason):
            return False
        self._emit(
            run_id,
            "state",
            step,
            f"{state.value}" + (f": {reason}" if reason else ""),
            {"state": state.value, "reason": reason},
        )
        return True

    def _worker(self) -> None:
        while True:
            run_id = self._queue.get()
            if run_id is None:
                return
            try:
                self._execute(run_id)
            except Exception:  # never let one run kill the worker
                log.exception("run %s crashed the worker", run_id)

    def _execute(self, run_id: str) -> None:
        assert self.store is not None
        with self._lock:
            run = self.store.get(run_id)
            if run is None or run.state != RunState.QUEUED:
                return
            self.store.update(run_id, state=RunState.RUNNING, started=run.started or time.time())
        stop = self._stops.setdefault(run_id, threading.Event())
        self._emit(run_id, "state", run.step, "running", {"state": "running"})
        workdir = self.settings.data_dir / "runs" / run_id
        deps: Dependencies | None = None
        step = run.step

        def emit(kind: str, s: int, message: str, data: dict[str, Any]) -> None:
            nonlocal step
            if stop.is_set():  # cancelled (or shutting down): report nothing more
                raise Cancelled("the run was cancelled")
            if kind == "step":
                step = s
                assert self.store is not None
                self.store.put_metrics(run_id, s, data)
                self.store.update(run_id, step=s)
            if kind == "publish":
                assert self.store is not None
                self.store.update(run_id, adapter_version=data["version"])
            self._emit(run_id, kind, s, message, data)

        try:
            # Inside the try: a stored config that no longer validates (limits tightened
            # since it was queued) or whose paths left the roots fails the run, with why.
            config = RunConfig.model_validate(run.config)
            self.check_access(config)
            deps = self.deps_factory(config, stop)
            loop = AlignmentLoop(
                run_id,
                config,
                workdir,
                self._model_dir(config),
                deps,
                emit,
                stop,
                history=lambda upto: self.store.metrics(run_id, upto) if self.store else [],
                resumes=run.resumes,
                access=self.access,
                keep_checkpoints=self.settings.keep_checkpoints,
            )
            result = loop.run()
        except Cancelled:
            if not self.ready:  # shutting down: the run stays resumable
                with self._lock:
                    current = self.store.get(run_id)
                    if current is not None and current.state == RunState.RUNNING:
                        self.store.update(run_id, state=RunState.QUEUED, resumes=run.resumes + 1)
            else:
                self._finish(run_id, RunState.CANCELLED, "cancelled", step)
        except LiftError as exc:
            self._finish(run_id, RunState.FAILED, exc.message, step)
        except ValidationError as exc:
            self._finish(
                run_id, RunState.FAILED, "invalid run config: " + validation_message(exc), step
            )
        except Exception as exc:
            log.exception("run %s failed", run_id)
            self._finish(run_id, RunState.FAILED, crash_reason(exc), step)
        else:
            with self._lock:
                if self.store.finish_unless_final(run_id, RunState.SUCCEEDED, ""):
                    self.store.update(run_id, result=result)
                    self._emit(
                        run_id,
                        "state",
                        config.steps,
                        "succeeded",
                        {"state": "succeeded", "reason": ""},
                    )
        finally:
            self.run_metrics.run_ended()
            if deps is not None:
                deps.close()

    def _model_dir(self, config: RunConfig) -> Path:
        return self.model_dir(config)

    def model_dir(self, config: RunConfig) -> Path:
        """The run's model directory (checked against the data roots), or the tiny demo model."""
        if config.model is not None:
            return self.access.roots.directory(config.model, "model")
        from lift.t2v.tiny import ensure_tiny_generator

        return ensure_tiny_generator(self.settings.cache_dir)

    def _config_defaults(self) -> dict[str, Any]:
        return self.config_defaults()

    def config_defaults(self) -> dict[str, Any]:
        """What a config that names no generator or critic gets: the trainer's own."""
        resolve = self.settings.resolve_endpoints
        return {
            "generator": {"address": self.settings.generator_address, "resolve": resolve},
            "critic": {"address": self.settings.critic_address, "resolve": resolve},
        }

    def check_access(self, config: RunConfig) -> None:
        """Refuse a config that names a path outside the data roots or an endpoint off the list.

        Runs at submit (INVALID_ARGUMENT / 400) and again when the run starts. The
        message is the same whether a path is missing or outside the roots.
        """
        for field, endpoint in (("generator", config.generator), ("critic", config.critic)):
            if endpoint is not None:
                self.endpoints.check(endpoint.address, f"{field}.address")
                for i, address in enumerate(endpoint.addresses):
                    self.endpoints.check(address, f"{field}.addresses.{i}")
        roots = self.access.roots
        if config.prompts_file is not None:
            roots.file(config.prompts_file, "prompts_file")
        if config.real_data is not None:
            roots.file_or_directory(config.real_data.path, "real_data.path")
        if config.offline_data is not None:
            roots.file(config.offline_data.path, "offline_data.path")
        if config.model is not None:
            model = roots.directory(config.model, "model")
            roots.file(model / "model_index.json", "model (its model_index.json)")


_PATHS = re.compile(r"(?<![\w.])/[^\s'\"():,]+")


def crash_reason(exc: BaseException) -> str:
    """A failed run's reason for an unexpected exception: its type and message, no paths.

    The reason is shown to whoever can read the run; server paths in an exception
    message (a file the model loader could not open, say) are replaced.
    """
    message = _PATHS.sub("<path>", str(exc))[:300]
    return f"the run's worker crashed: {type(exc).__name__}" + (f": {message}" if message else "")


# A page token is opaque to callers: base64 of the last run's (created, id) and the
# state filter it was made for. Paging by key, not offset, keeps pages stable while
# new runs arrive at the front of the list.


def page_token(last: RunRecord, state: str) -> str:
    """The token for the page after ``last``."""
    raw = json.dumps([last.created, last.id, state], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def parse_page_token(token: str, state: str) -> tuple[float, str] | None:
    """The (created, id) a token continues after; None for the first page."""
    if not token:
        return None
    try:
        created, run_id, token_state = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(run_id, str) or not isinstance(created, int | float):
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(
            "page_token is not a token this trainer issued: pass next_page_token as it came"
        ) from None
    if token_state != state:
        raise InvalidInput("page_token was issued for another state filter: keep the filter")
    return float(created), run_id
