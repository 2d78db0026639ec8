"""The feedback engine: the store, the queue imports, the metrics; no HTTP types here."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from lift.services.feedback import metrics
from lift.services.feedback.overview import Overview, build_overview
from lift.services.feedback.queue import ImportReport, add_upload, import_source
from lift.services.feedback.settings import FeedbackSettings
from lift.services.feedback.store import FLAG, SKIP, Item, Me, Store, check_rating

log = logging.getLogger(__name__)


class FeedbackEngine:
    """What the HTTP routes call: assignment, ratings, undo, overview, uploads."""

    def __init__(self, settings: FeedbackSettings) -> None:
        self.settings = settings
        self.store = Store(settings.db_url, settings.data)
        self.ready = False
        self.reports: list[ImportReport] = []

    @property
    def overlap(self) -> int:
        return self.settings.overlap

    def load(self) -> None:
        """Import the configured sources (ImportRefused stops the start) and set the gauges."""
        for source in self.settings.videos:
            report = self.import_videos(source)
            log.info("%s", report.summary())
            for problem in report.skipped:
                log.warning("%s", problem)
        self._gauges()
        n = len(self.store.items())
        if n == 0:
            log.warning(
                "the queue is empty: nobody has anything to rate; start with --videos DIR "
                "(videos with prompts) or upload with `lift feedback sample --feedback URL`"
            )
        else:
            log.info("%d items in the queue, each for %d annotators", n, self.overlap)
        self.ready = True

    def close(self) -> None:
        self.store.close()

    def import_videos(self, source: Path) -> ImportReport:
        """Queue the videos of a directory or JSONL file (see :mod:`.queue`)."""
        report = import_source(
            self.store, source, self.settings.max_video_bytes, self.settings.max_prompt_chars
        )
        self.reports.append(report)
        self._gauges()
        return report

    def _gauges(self) -> None:
        counts = self.store.rating_counts()
        complete = sum(1 for n in counts.values() if n >= self.overlap)
        metrics.set_queue(len(self.store.items()), complete)

    # -- annotators --------------------------------------------------------------

    def me(self, annotator: str) -> Me:
        return self.store.me(annotator, self.overlap)

    def next(self, annotator: str) -> tuple[Item | None, Me]:
        return self.store.next_item(annotator, self.overlap)

    def item(self, item_id: str) -> Item:
        return self.store.item(item_id)

    def video_file(self, item: Item) -> Path | None:
        """The item's video file, None when it is gone or no longer the file queued."""
        return self.store.servable_file(item)

    def rate(
        self, annotator: str, item_id: str, labels: Mapping[str, str], reasons: Mapping[str, str]
    ) -> tuple[int, Me]:
        checked_labels, checked_reasons = check_rating(labels, reasons)
        rating_id = self.store.rate(
            annotator, item_id, checked_labels, checked_reasons, self.overlap
        )
        metrics.observe_rating(checked_labels)
        self._gauges()
        return rating_id, self.me(annotator)

    def skip(self, annotator: str, item_id: str) -> Me:
        self.store.skip(annotator, item_id, SKIP)
        metrics.ACTIONS.labels("skip").inc()
        return self.me(annotator)

    def flag(self, annotator: str, item_id: str, note: str) -> Me:
        self.store.skip(annotator, item_id, FLAG, note)
        metrics.ACTIONS.labels("flag").inc()
        return self.me(annotator)

    def undo(self, annotator: str) -> tuple[tuple[str, str] | None, Me]:
        undone = self.store.undo(annotator)
        if undone is not None:
            metrics.ACTIONS.labels("undo").inc()
            self._gauges()
        return undone, self.me(annotator)

    # -- operators ---------------------------------------------------------------

    def overview(self) -> Overview:
        return build_overview(self.store, self.overlap, self.settings.idle_gap_s)

    def upload(self, data: bytes, prompt: str) -> tuple[str, bool]:
        item_id, created = add_upload(self.store, data, prompt, self.settings.max_prompt_chars)
        self._gauges()
        return item_id, created
