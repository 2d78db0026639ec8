"""The micro-batcher: requests from many threads judged together, correctly routed."""

from __future__ import annotations

import threading
import time

import pytest

from lift.critique import Dimension, DimensionVerdict, LabelProbabilities
from lift.errors import Cancelled, DeadlineExceeded
from lift.services.critic.backends import Judgement
from lift.services.critic.batching import MicroBatcher
from lift.serving import Deadline


def _judgement(x: float) -> Judgement:
    p = LabelProbabilities(x, 1 - x, 0.0)
    return Judgement((DimensionVerdict.assessed(Dimension.VIDEO_FIDELITY, p),), dynamic_degree=x)


class Recorder:
    def __init__(self, fail_on: float | None = None, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[list[float], bool]] = []
        self.fail_on = fail_on
        self.delay_s = delay_s

    def __call__(self, items, with_reasons, check):
        self.calls.append((list(items), with_reasons))
        time.sleep(self.delay_s)
        if self.fail_on in items:
            raise RuntimeError("bad item")
        return [_judgement(x) for x in items]


def _submit_from_threads(batcher, values, with_reasons=False):
    results: dict[float, object] = {}
    barrier = threading.Barrier(len(values))

    def go(v: float) -> None:
        barrier.wait()
        try:
            results[v] = batcher.submit([v], with_reasons, Deadline(10))[0]
        except Exception as exc:
            results[v] = exc

    threads = [threading.Thread(target=go, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_concurrent_requests_share_a_batch_and_get_their_own_results() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, max_size=8, max_wait_s=0.3)
    values = [i / 10 for i in range(6)]
    results = _submit_from_threads(batcher, values)
    batcher.close()
    assert max(len(items) for items, _ in rec.calls) > 1
    for v in values:
        assert results[v].dynamic_degree == v  # type: ignore[union-attr]


def test_batches_never_exceed_max_size_or_mix_modes() -> None:
    rec = Recorder(delay_s=0.05)
    batcher = MicroBatcher(rec, max_size=2, max_wait_s=0.2)
    out = batcher.submit([0.1, 0.2, 0.3, 0.4, 0.5], False, Deadline(10))
    assert [j.dynamic_degree for j in out] == [0.1, 0.2, 0.3, 0.4, 0.5]
    _submit_from_threads(batcher, [0.6, 0.7], with_reasons=True)
    batcher.close()
    assert all(len(items) <= 2 for items, _ in rec.calls)
    for items, mode in rec.calls:
        assert mode == (items[0] >= 0.6)


def test_a_failing_item_fails_alone() -> None:
    rec = Recorder(fail_on=0.3)
    batcher = MicroBatcher(rec, max_size=8, max_wait_s=0.3)
    results = _submit_from_threads(batcher, [0.1, 0.2, 0.3])
    batcher.close()
    assert isinstance(results[0.3], RuntimeError)
    assert results[0.1].dynamic_degree == 0.1  # type: ignore[union-attr]
    assert results[0.2].dynamic_degree == 0.2  # type: ignore[union-attr]


def test_expired_requests_are_dropped_before_judging() -> None:
    rec = Recorder(delay_s=0.3)
    batcher = MicroBatcher(rec, max_size=1, max_wait_s=0.0)
    blocker = threading.Thread(target=lambda: batcher.submit([0.9], False, Deadline(10)))
    blocker.start()
    time.sleep(0.05)  # the model thread is now busy with 0.9
    with pytest.raises(DeadlineExceeded):
        batcher.submit([0.1], False, Deadline(0.1))
    blocker.join(5)
    time.sleep(0.1)
    batcher.close()
    assert [items for items, _ in rec.calls] == [[0.9]]


def test_close_cancels_waiting_requests() -> None:
    batcher = MicroBatcher(Recorder(), max_size=8, max_wait_s=0.0)
    batcher.close()
    with pytest.raises(Cancelled):
        batcher.submit([0.1], False, Deadline(1))
