"""Wire models of the feedback service's HTTP API (the page in static/ is written against them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lift.services.feedback.overview import Overview
from lift.services.feedback.store import Item, Me


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InfoJSON(_Model):
    """GET /v1/info."""

    service: str = "feedback"
    version: str
    auth: bool = Field(..., description="Tokens are required (else X-Lift-Annotator names you).")
    overlap: int = Field(..., description="Annotators who rate each item.")
    items: int
    dimensions: list[str]
    labels: list[str]


class MeJSON(_Model):
    """An annotator's progress."""

    annotator: str
    rated: int
    skipped: int
    flagged: int
    remaining: int = Field(..., description="Items this annotator may still get.")
    total: int = Field(..., description="remaining + the items this annotator has handled.")

    @classmethod
    def fields(cls, me: Me) -> dict[str, Any]:
        """The ``me`` fields, to spread into other replies."""
        return cls(
            annotator=me.annotator,
            rated=me.rated,
            skipped=me.skipped,
            flagged=me.flagged,
            remaining=me.remaining,
            total=me.total,
        ).model_dump()


class ItemJSON(_Model):
    """An item offered for rating."""

    item_id: str
    prompt: str
    video_url: str
    fps: float | None
    frames: int | None

    @classmethod
    def of(cls, item: Item) -> ItemJSON:
        return cls(
            item_id=item.item_id,
            prompt=item.prompt,
            video_url=f"/v1/items/{item.item_id}/video",
            fps=item.fps,
            frames=item.frames,
        )


class NextJSON(MeJSON):
    """GET /v1/next: the next item (null when nothing is left) and the me fields."""

    item: ItemJSON | None


class RatingIn(_Model):
    """POST /v1/ratings."""

    item_id: str = Field(..., min_length=1, max_length=64)
    labels: dict[str, str] = Field(
        ..., description="good, normal or bad for each of the three dimensions."
    )
    reasons: dict[str, str] = Field(
        default_factory=dict, description="Per dimension; required when the label is not good."
    )


class RatedJSON(MeJSON):
    """POST /v1/ratings reply."""

    rating_id: str


class FlagIn(_Model):
    """POST /v1/items/{item_id}:flag."""

    note: str = Field("", max_length=2000)


class UndoneJSON(_Model):
    """What an undo took back."""

    kind: str
    item_id: str


class UndoJSON(MeJSON):
    """POST /v1/undo reply."""

    undone: UndoneJSON | None


class ItemUploadJSON(_Model):
    """POST /v1/items as JSON."""

    video_b64: str = Field(..., min_length=1)
    prompt: str = Field(..., min_length=1)


class ItemUploadForm(_Model):
    """POST /v1/items as multipart/form-data."""

    video: bytes
    prompt: str = Field(..., min_length=1)


class ItemCreatedJSON(_Model):
    """POST /v1/items reply."""

    item_id: str
    created: bool = Field(..., description="False when the same video and prompt were queued.")


class AnnotatorJSON(_Model):
    name: str
    rated: int
    skipped: int
    flagged: int
    per_hour: float | None = Field(..., description="Ratings per hour of active time.")


class PairJSON(_Model):
    a: str
    b: str
    kappa: float | None
    items: int


class DimensionAgreementJSON(_Model):
    fleiss_kappa: float | None
    items: int = Field(..., description="Items with 2 or more ratings.")
    cohen_kappa: list[PairJSON]


class FlagJSON(_Model):
    item_id: str
    annotator: str
    note: str
    at: float = Field(..., description="Unix time, seconds.")


class OverviewJSON(_Model):
    """GET /v1/overview."""

    items: int
    complete: int
    coverage: float
    overlap: int
    ratings: int
    annotators: list[AnnotatorJSON]
    agreement: dict[str, DimensionAgreementJSON]
    flags: list[FlagJSON]

    @classmethod
    def of(cls, o: Overview) -> OverviewJSON:
        return cls(
            items=o.items,
            complete=o.complete,
            coverage=o.coverage,
            overlap=o.overlap,
            ratings=o.ratings,
            annotators=[
                AnnotatorJSON(
                    name=a.name,
                    rated=a.rated,
                    skipped=a.skipped,
                    flagged=a.flagged,
                    per_hour=a.per_hour,
                )
                for a in o.annotators
            ],
            agreement={
                dim.value: DimensionAgreementJSON(
                    fleiss_kappa=ag.fleiss_kappa,
                    items=ag.items,
                    cohen_kappa=[
                        PairJSON(a=p.a, b=p.b, kappa=p.kappa, items=p.items) for p in ag.cohen_kappa
                    ],
                )
                for dim, ag in o.agreement.items()
            },
            flags=[
                FlagJSON(item_id=f.item_id, annotator=f.annotator, note=f.note, at=f.at)
                for f in o.flags
            ],
        )
