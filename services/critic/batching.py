"""Micro-batching: prepared videos from concurrent requests, judged together.

Request threads ``submit`` prepared videos and block; one model thread takes
the oldest waiting video, waits at most ``max_wait_s`` for more of the same
mode (Critique or Score) to arrive, and judges up to ``max_size`` of them in
one ``judge_batch`` call. A request whose caller left or whose deadline passed
is dropped before its batch runs. When a batch fails, its videos are retried
one by one so one bad video does not fail the others.

The items are whatever the judge function takes: prepared videos for
``judge_batch``, or prepared ``(a, b)`` pairs for a backend's native
``compare_batch`` (then the results are pair judgements).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from lift.errors import Cancelled, LiftError
from lift.services.critic import metrics
from lift.serving import Deadline

log = logging.getLogger(__name__)

JudgeFn = Callable[[Sequence[Any], bool, Callable[[], None]], Sequence[Any]]
_POLL_S = 0.05


@dataclass(eq=False)
class _Job:
    item: Any
    with_reasons: bool
    deadline: Deadline
    enqueued: float = field(default_factory=time.monotonic)
    future: Future[Any] = field(default_factory=Future)

    def gone(self) -> bool:
        try:
            self.deadline.check()
        except LiftError:
            return True
        return False


class MicroBatcher:
    """One model thread judging micro-batches gathered from many request threads."""

    def __init__(self, judge: JudgeFn, max_size: int, max_wait_s: float) -> None:
        self._judge = judge
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="critic-batcher", daemon=True)
        self._thread.start()

    def submit(self, items: Sequence[Any], with_reasons: bool, deadline: Deadline) -> list[Any]:
        """Judge ``items`` (blocking); raises when the deadline passes or the caller leaves."""
        jobs = [_Job(item, with_reasons, deadline) for item in items]
        with self._cond:
            if self._closed:
                raise Cancelled("the critic is shutting down")
            self._queue.extend(jobs)
            self._cond.notify()
        out = []
        for job in jobs:
            while True:
                try:
                    out.append(job.future.result(timeout=_POLL_S))
                    break
                except FutureTimeout:
                    deadline.check()  # raises if the caller is gone; the batcher skips the rest
        return out

    def close(self) -> None:
        """Stop the model thread after the current batch; waiting jobs are cancelled."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        for job in pending:
            job.future.set_exception(Cancelled("the critic is shutting down"))
        self._thread.join(timeout=30)

    # -- model thread ----------------------------------------------------------
    def _take(self) -> list[_Job] | None:
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            mode = self._queue[0].with_reasons
            while True:
                same = sum(1 for j in self._queue if j.with_reasons == mode)
                left = self._queue[0].enqueued + self.max_wait_s - time.monotonic()
                if same >= self.max_size or left <= 0 or self._closed:
                    break
                self._cond.wait(timeout=left)
            batch: list[_Job] = []
            keep: deque[_Job] = deque()
            for j in self._queue:
                (batch if j.with_reasons == mode and len(batch) < self.max_size else keep).append(j)
            self._queue = keep
            return batch

    def _loop(self) -> None:
        while (batch := self._take()) is not None:
            live = []
            for job in batch:
                if job.gone():
                    job.future.set_exception(Cancelled("the caller left before judging started"))
                else:
                    live.append(job)
            if live:
                self._run(live)

    def _run(self, jobs: list[_Job]) -> None:
        def check() -> None:
            if all(j.gone() for j in jobs):
                raise Cancelled("every caller of this batch left")

        metrics.MICRO_BATCH_SIZE.observe(len(jobs))
        try:
            results = self._judge([j.item for j in jobs], jobs[0].with_reasons, check)
        except Exception as exc:
            if len(jobs) == 1:
                jobs[0].future.set_exception(exc)
                return
            log.warning("a batch of %d failed (%s); judging its videos one by one", len(jobs), exc)
            for job in jobs:
                self._run([job])
            return
        for job, result in zip(jobs, results, strict=True):
            job.future.set_result(result)
