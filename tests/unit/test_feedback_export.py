"""Consensus labels and the by-video split of the feedback export."""

from __future__ import annotations

import pytest

from lift.critique import Dimension, Label
from lift.errors import InvalidInput
from lift.services.feedback.export import consensus_label, split_videos
from lift.services.feedback.store import Rating, check_rating

SC = Dimension.SEMANTIC_CONSISTENCY


def _r(i: int, label: Label, reason: str = "") -> Rating:
    return Rating(i, f"rater{i}", "item", float(i), {SC: label}, {SC: reason} if reason else {})


def test_majority_and_unanimity() -> None:
    two_bad = [_r(1, Label.BAD), _r(2, Label.BAD, "the cat is a dog"), _r(3, Label.GOOD, "ok")]
    assert consensus_label(two_bad, SC, "majority") == (Label.BAD, "the cat is a dog")
    assert consensus_label(two_bad, SC, "all") is None
    tie = [_r(1, Label.BAD, "x"), _r(2, Label.GOOD)]
    assert consensus_label(tie, SC, "majority") is None
    same = [_r(1, Label.GOOD), _r(2, Label.GOOD)]
    assert consensus_label(same, SC, "all") == (Label.GOOD, "")
    # the reason comes from the oldest rating with that label that has one
    first = [_r(1, Label.NORMAL, "first"), _r(2, Label.NORMAL, "second")]
    assert consensus_label(first, SC, "majority") == (Label.NORMAL, "first")


def test_split_is_seeded_disjoint_and_never_empty() -> None:
    keys = [f"v{i}" for i in range(10)]
    a = split_videos(keys, 0.2, seed=1)
    assert a == split_videos(list(reversed(keys)), 0.2, seed=1)  # order of input is irrelevant
    assert len(a) == 2 and a <= set(keys)
    assert any(split_videos(keys, 0.2, seed=s) != a for s in range(2, 6))
    assert len(split_videos(["a", "b"], 0.01, 0)) == 1  # both sides keep a video
    assert len(split_videos(["a", "b"], 0.99, 0)) == 1
    assert split_videos(keys, 0.0, 0) == set()


def test_check_rating_messages() -> None:
    labels, reasons = check_rating(
        {"semantic_consistency": "good", "motion_smoothness": "normal", "video_fidelity": "bad"},
        {"motion_smoothness": " stutters ", "video_fidelity": "blurry"},
    )
    assert labels[Dimension.VIDEO_FIDELITY] is Label.BAD
    assert reasons == {Dimension.MOTION_SMOOTHNESS: "stutters", Dimension.VIDEO_FIDELITY: "blurry"}
    with pytest.raises(InvalidInput, match=r"labels\.motion_smoothness is missing"):
        check_rating({"semantic_consistency": "good"}, {})
    with pytest.raises(InvalidInput, match="unknown dimension 'colour'"):
        check_rating({"colour": "good"}, {})


def test_schema_is_portable_to_server_databases() -> None:
    # No PostgreSQL or MySQL server runs here: the DDL at least compiles for them, and time
    # stamps are 8-byte floats everywhere (MySQL's FLOAT would round them to minutes).
    from sqlalchemy.dialects import mysql, postgresql
    from sqlalchemy.schema import CreateTable

    from lift.services.feedback.store import metadata

    for dialect, double in (
        (postgresql.dialect(), "DOUBLE PRECISION"),
        (mysql.dialect(), "DOUBLE"),
    ):
        ddl = {t.name: str(CreateTable(t).compile(dialect=dialect)) for t in metadata.sorted_tables}
        assert f"at {double} NOT NULL" in ddl["actions"]
        assert f"undone_at {double}" in ddl["actions"]


def test_summary_line_counts_in_words() -> None:
    from lift.services.feedback.export import ExportSummary

    one = ExportSummary(train_records=3, test_records=1, train_videos=1, test_videos=1, items=2)
    assert "3 records of 1 video," in one.line() and "1 record of 1 video " in one.line()
    assert "1 item-dimension without consensus" in ExportSummary(ties=1).line()
    many = ExportSummary(train_records=6, train_videos=2, items=2, ties=2).line()
    assert "6 records of 2 videos" in many and "2 item-dimensions without" in many
