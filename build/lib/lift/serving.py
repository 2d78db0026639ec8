"""Running blocking engine work from async fronts: admission, deadlines, cancellation.

Both fronts of a service (gRPC and HTTP) submit work through one
:class:`WorkLimiter`, so capacity is shared: at most ``workers`` jobs run, at
most ``max_queue`` wait, and the rest are refused with :class:`Overloaded`
rather than piling up. Each job carries a :class:`Deadline` that the engine
checks between stages, so a caller who gave up (deadline or disconnect) stops
costing CPU at the next check.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from lift import metrics
from lift.errors import Cancelled, DeadlineExceeded, Overloaded

T = TypeVar("T")


class Deadline:
    """When a job must be done by, and whether its caller is still there."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.expires_at = None if timeout_s is None else time.monotonic() + timeout_s
        self._cancelled = threading.Event()

    def remaining(self) -> float | None:
        """Seconds left, or None for no deadline."""
        return None if self.expires_at is None else self.expires_at - time.monotonic()

    def cancel(self) -> None:
        """Mark the caller as gone; the next :meth:`check` raises."""
        self._cancelled.set()

    def check(self) -> None:
        """Raise if the caller is gone or the deadline has passed."""
        if self._cancelled.is_set():
            raise Cancelled("the request was cancelled by the caller")
        left = self.remaining()
        if left is not None and left <= 0:
            raise DeadlineExceeded("the request's deadline passed before the work finished")


class WorkLimiter:
    """Bounded worker pool with a bounded wait queue, shared by all fronts of a service."""

    def __init__(self, workers: int, max_queue: int, service: str = "") -> None:
        self.service = service
        self.workers = workers
        self.max_queue = max_queue
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine")
        self._slots = asyncio.Semaphore(workers)
        self._admitted = 0
        self.running = 0
        metrics.QUEUE_CAPACITY.labels(service).set(max_queue)
        metrics.WORKERS.labels(service).set(workers)
        self._report()

    @property
    def waiting(self) -> int:
        """Jobs admitted but not yet running."""
        return self._admitted - self.running

    async def run(self, fn: Callable[[Deadline], T], deadline: Deadline) -> T:
        """Run ``fn(deadline)`` in a worker thread, honouring capacity and the deadline."""
        if self._admitted >= self.workers + self.max_queue:
            raise Overloaded(
                f"the service is busy ({self.running} running, {self.waiting} waiting); "
                "retry with backoff"
            )
        self._admitted += 1
        self._report()
        try:
            left = deadline.remaining()
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout=left)
            except TimeoutError:
                raise DeadlineExceeded(
                    "the request's deadline passed while it waited for a worker"
                ) from None
            self.running += 1
            self._report()
            try:
                deadline.check()
                loop = asyncio.get_running_loop()
                future = loop.run_in_executor(self._pool, fn, deadline)
                try:
                    return await asyncio.shield(future)
                except asyncio.CancelledError:
                    # The caller left: tell the job to stop at its next check, and keep
                    # the slot until the thread really finishes.
                    deadline.cancel()
                    try:
                        await future
                    except Exception:
                        pass
                    raise
            finally:
                self.running -= 1
                self._slots.release()
        finally:
            self._admitted -= 1
            self._report()

    def _report(self) -> None:
        metrics.QUEUE_DEPTH.labels(self.service).set(self.waiting)
        metrics.WORKERS_BUSY.labels(self.service).set(self.running)

    def shutdown(self) -> None:
        """Stop the worker threads after their current jobs."""
        self._pool.shutdown(wait=True, cancel_futures=True)
