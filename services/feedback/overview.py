"""The overview: coverage, per-annotator throughput, agreement between annotators, flags."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations, pairwise

from lift.critique import ASSESSED_LABELS, DIMENSIONS, Dimension, Label
from lift.hra.kappa import cohen_kappa, fleiss_from_labels
from lift.services.feedback.store import FLAG, RATING, SKIP, Flag, Rating, Store


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's κ of two annotators on the items both rated."""

    a: str
    b: str
    kappa: float | None
    items: int


@dataclass(frozen=True)
class DimensionAgreement:
    """Agreement on one dimension: Fleiss' κ over items with 2+ ratings, Cohen's per pair."""

    fleiss_kappa: float | None
    items: int
    cohen_kappa: list[PairAgreement]


@dataclass(frozen=True)
class AnnotatorStats:
    """What one annotator did and how fast."""

    name: str
    rated: int
    skipped: int
    flagged: int
    per_hour: float | None
    active_s: float


@dataclass(frozen=True)
class Overview:
    """Everything the overview page shows."""

    items: int
    complete: int
    overlap: int
    ratings: int
    annotators: list[AnnotatorStats]
    agreement: dict[Dimension, DimensionAgreement]
    flags: list[Flag] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Share of items with as many ratings as the overlap asks for."""
        return self.complete / self.items if self.items else 0.0


def agreement(ratings: list[Rating]) -> dict[Dimension, DimensionAgreement]:
    """Fleiss' and pairwise Cohen's κ per dimension over the live ratings."""
    by_item: dict[str, dict[str, Rating]] = defaultdict(dict)
    for r in ratings:
        by_item[r.item_id][r.annotator] = r
    # The items each pair of annotators both rated, found item by item (an item has a few
    # raters), not pair by pair over every item (many annotators x many items).
    shared: dict[tuple[str, str], list[dict[str, Rating]]] = defaultdict(list)
    for raters in by_item.values():
        for a, b in combinations(sorted(raters), 2):
            shared[(a, b)].append(raters)
    out: dict[Dimension, DimensionAgreement] = {}
    for dim in DIMENSIONS:
        multi = [
            [r.labels[dim] for r in raters.values()]
            for raters in by_item.values()
            if len(raters) >= 2
        ]
        pairs = []
        for (a, b), both in sorted(shared.items()):
            la: list[Label] = [raters[a].labels[dim] for raters in both]
            lb: list[Label] = [raters[b].labels[dim] for raters in both]
            pairs.append(PairAgreement(a, b, cohen_kappa(la, lb), len(both)))
        out[dim] = DimensionAgreement(
            fleiss_from_labels(multi, ASSESSED_LABELS) if multi else None, len(multi), pairs
        )
    return out


def throughput(
    activity: list[tuple[str, str, float, bool]], idle_gap_s: float
) -> dict[str, tuple[float, dict[str, int]]]:
    """Per annotator: active seconds and live counts per kind.

    Active time is the sum of the pauses between consecutive actions, each counted up
    to ``idle_gap_s`` (longer ones are time away); undone actions were work too.
    """
    times: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys((RATING, SKIP, FLAG), 0))
    for name, kind, at, live in activity:
        times[name].append(at)
        if live:
            counts[name][kind] += 1
    out = {}
    for name, ts in times.items():
        ts.sort()
        active = sum(min(b - a, idle_gap_s) for a, b in pairwise(ts))
        out[name] = (active, counts[name])
    return out


def build_overview(store: Store, overlap: int, idle_gap_s: float) -> Overview:
    """Read the store once and compute the overview."""
    ratings = store.ratings()
    per_item = store.rating_counts()
    n_items = len(store.items())
    stats = []
    for name, (active, counts) in sorted(throughput(list(store.activity()), idle_gap_s).items()):
        rated = counts[RATING]
        per_hour = rated / (active / 3600) if active > 0 else None
        stats.append(
            AnnotatorStats(name, rated, counts[SKIP], counts[FLAG], per_hour, round(active, 3))
        )
    return Overview(
        items=n_items,
        complete=sum(1 for n in per_item.values() if n >= overlap),
        overlap=overlap,
        ratings=len(ratings),
        annotators=stats,
        agreement=agreement(ratings),
        flags=store.flags(),
    )
