"""The feedback service in-process: assignment with overlap, ratings, undo, auth, κ, export."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lift.auth import Scope, add_token
from lift.cli.main import app as cli
from lift.hra.kappa import cohen_kappa, fleiss_from_labels
from lift.services.feedback.engine import FeedbackEngine
from lift.services.feedback.http_app import create_app
from lift.services.feedback.queue import ImportRefused, import_source
from lift.services.feedback.settings import FeedbackSettings
from lift.video.encode import encode_video

DIMS = ("semantic_consistency", "motion_smoothness", "video_fidelity")
N_VIDEOS = 5


def _mp4(seed: int) -> bytes:
    frames = np.random.default_rng(seed).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    return encode_video(frames, 8.0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five distinct tiny clips with <stem>.txt prompts, and one without a prompt."""
    d = tmp_path_factory.mktemp("fb-videos")
    for i in range(N_VIDEOS):
        (d / f"clip{i}.mp4").write_bytes(_mp4(i))
        (d / f"clip{i}.txt").write_text(f"a red ball bounces, take {i}\n")
    (d / "orphan.mp4").write_bytes(_mp4(99))  # no prompt: reported and skipped
    return d


@pytest.fixture
def service(tmp_path: Path, videos: Path) -> Callable[..., tuple[TestClient, FeedbackEngine]]:
    """Start (or restart) the app on one data dir; extra settings as keyword arguments."""

    def start(**kw: object) -> tuple[TestClient, FeedbackEngine]:
        settings = FeedbackSettings(data=tmp_path / "data", videos=[videos], **kw)  # type: ignore[arg-type]
        engine = FeedbackEngine(settings)
        engine.load()
        return TestClient(create_app(engine), base_url="http://127.0.0.1"), engine

    return start


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    path = tmp_path / "tokens.json"
    scopes = {
        "alice": [Scope.RATE],
        "bob": [Scope.RATE],
        "carol": [Scope.RATE],
        "boss": [Scope.ADMIN],
        "judge": [Scope.JUDGE],
    }
    return path, {name: add_token(path, name, s) for name, s in scopes.items()}


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _rating(item_id: str, sc: str, ms: str = "good", vf: str = "good") -> dict[str, object]:
    labels = {"semantic_consistency": sc, "motion_smoothness": ms, "video_fidelity": vf}
    reasons = {d: f"{d} is {lab} here" for d, lab in labels.items() if lab != "good"}
    return {"item_id": item_id, "labels": labels, "reasons": reasons}


def _rate_all(c: TestClient, headers: dict[str, str], labels: list[str]) -> list[str]:
    """Rate whatever /v1/next offers until nothing is left; semantic label i for item i."""
    done = []
    while True:
        r = c.get("/v1/next", headers=headers)
        assert r.status_code == 200, r.text
        item = r.json()["item"]
        if item is None:
            return done
        label = labels[int(item["prompt"].rsplit(" ", 1)[1])]
        r = c.post("/v1/ratings", headers=headers, json=_rating(item["item_id"], label))
        assert r.status_code == 201, r.text
        done.append(item["item_id"])


ALICE = ["good", "bad", "normal", "good", "bad"]
BOB = ["good", "bad", "good", "good", "normal"]


def test_overlap_assignment_kappa_and_restart(service, tokens) -> None:
    path, tok = tokens
    c, engine = service(auth_file=path, overlap=2)
    assert engine.reports[0].added == N_VIDEOS
    assert any("orphan.mp4" in s and "no prompt" in s for s in engine.reports[0].skipped)
    assert c.get("/v1/info").status_code == 401
    info = c.get("/v1/info", headers=_auth(tok["alice"])).json()
    assert info["auth"] is True and info["items"] == N_VIDEOS and info["overlap"] == 2

    first = c.get("/v1/next", headers=_auth(tok["alice"])).json()
    assert first["item"]["fps"] == pytest.approx(8.0) and first["item"]["frames"] == 6
    video = c.get(first["item"]["video_url"], headers={**_auth(tok["alice"]), "range": "bytes=0-7"})
    assert video.status_code == 206 and video.headers["content-type"] == "video/mp4"
    assert len(video.content) == 8

    a = _rate_all(c, _auth(tok["alice"]), ALICE)
    b = _rate_all(c, _auth(tok["bob"]), BOB)
    assert sorted(a) == sorted(b) and len(a) == N_VIDEOS  # both get every item
    carol = c.get("/v1/next", headers=_auth(tok["carol"])).json()
    assert carol["item"] is None and carol["remaining"] == 0 and carol["total"] == 0

    me = c.get("/v1/me", headers=_auth(tok["alice"])).json()
    assert me == {
        "annotator": "alice",
        "rated": N_VIDEOS,
        "skipped": 0,
        "flagged": 0,
        "remaining": 0,
        "total": N_VIDEOS,
    }
    assert c.get("/v1/overview", headers=_auth(tok["alice"])).status_code == 403
    ov = c.get("/v1/overview", headers=_auth(tok["boss"])).json()
    assert ov["items"] == N_VIDEOS and ov["complete"] == N_VIDEOS and ov["coverage"] == 1.0
    assert ov["ratings"] == 2 * N_VIDEOS
    sc = ov["agreement"]["semantic_consistency"]
    assert sc["items"] == N_VIDEOS
    assert sc["fleiss_kappa"] == pytest.approx(
        fleiss_from_labels(list(zip(ALICE, BOB, strict=True)), ["good", "normal", "bad"])
    )
    [pair] = sc["cohen_kappa"]
    assert (pair["a"], pair["b"], pair["items"]) == ("alice", "bob", N_VIDEOS)
    assert pair["kappa"] == pytest.approx(cohen_kappa(ALICE, BOB))
    assert 0 < pair["kappa"] < 1  # they disagree on two of five: neither chance nor perfect
    # every other label was "good" for both: κ is undefined, not 1
    assert ov["agreement"]["video_fidelity"]["fleiss_kappa"] is None
    assert {x["name"] for x in ov["annotators"]} == {"alice", "bob"}

    # restart on the same SQLite file: everything is still there, nothing imported twice
    c2, engine2 = service(auth_file=path, overlap=2)
    assert engine2.reports[0].added == 0 and engine2.reports[0].present == N_VIDEOS
    assert c2.get("/v1/overview", headers=_auth(tok["boss"])).json() == ov
    assert c2.get("/v1/me", headers=_auth(tok["alice"])).json() == me


def test_rating_rules_undo_skip_flag(service) -> None:
    c, engine = service(overlap=2)
    h = {"x-lift-annotator": "dana"}
    assert c.get("/v1/next").status_code == 400  # dev mode: who are you?
    assert c.get("/v1/next", headers={"x-lift-annotator": "no spaces"}).status_code == 400
    item = c.get("/v1/next", headers=h).json()["item"]["item_id"]

    no_reason = _rating(item, "bad")
    no_reason["reasons"] = {}
    r = c.post("/v1/ratings", headers=h, json=no_reason)
    assert r.status_code == 400 and "reasons.semantic_consistency" in r.json()["error"]["message"]
    missing = _rating(item, "good")
    del missing["labels"]["video_fidelity"]  # type: ignore[attr-defined]
    r = c.post("/v1/ratings", headers=h, json=missing)
    assert r.status_code == 400 and "labels.video_fidelity" in r.json()["error"]["message"]
    r = c.post("/v1/ratings", headers=h, json=_rating(item, "great"))
    assert r.status_code == 400 and "good, normal, bad" in r.json()["error"]["message"]
    r = c.post("/v1/ratings", headers=h, json=_rating("0123456789abcdef", "good"))
    assert r.status_code == 404
    assert c.get("/v1/items/0123456789abcdef/video", headers=h).status_code == 404

    good = _rating(item, "good")
    good["reasons"] = {"semantic_consistency": "  exactly the ball  "}  # kept for good, trimmed
    assert c.post("/v1/ratings", headers=h, json=good).status_code == 201
    r = c.post("/v1/ratings", headers=h, json=_rating(item, "bad"))
    assert r.status_code == 409 and "undo" in r.json()["error"]["message"]
    assert c.get("/v1/next", headers=h).json()["item"]["item_id"] != item

    undo = c.post("/v1/undo", headers=h).json()
    assert undo["undone"] == {"kind": "rating", "item_id": item} and undo["rated"] == 0
    assert c.get("/v1/next", headers=h).json()["item"]["item_id"] == item  # offered again
    assert c.post("/v1/ratings", headers=h, json=_rating(item, "bad")).status_code == 201

    nxt = c.get("/v1/next", headers=h).json()["item"]["item_id"]
    me = c.post(f"/v1/items/{nxt}:skip", headers=h).json()
    assert me["skipped"] == 1 and me["remaining"] == N_VIDEOS - 2
    third = c.get("/v1/next", headers=h).json()["item"]["item_id"]
    me = c.post(f"/v1/items/{third}:flag", headers=h, json={"note": "the ball is a cube"}).json()
    assert me["flagged"] == 1 and me["remaining"] == N_VIDEOS - 3
    flags = c.get("/v1/overview").json()["flags"]
    assert [(f["item_id"], f["annotator"], f["note"]) for f in flags] == [
        (third, "dana", "the ball is a cube")
    ]
    assert c.post("/v1/undo", headers=h).json()["undone"] == {"kind": "flag", "item_id": third}
    assert c.get("/v1/overview").json()["flags"] == []
    assert c.post("/v1/undo", headers=h).json()["undone"]["kind"] == "skip"
    assert c.get("/v1/next", headers=h).json()["item"]["item_id"] == nxt
    # undone actions stay in the log, stamped: nothing accepted is deleted
    assert c.get("/v1/overview").json()["ratings"] == 1
    log = [(kind, live) for _, kind, _, live in engine.store.activity()]
    assert log == [("rating", False), ("rating", True), ("skip", False), ("flag", False)]


def test_auth_scopes_and_open_pages(service, tokens) -> None:
    path, tok = tokens
    c, _ = service(auth_file=path)
    assert c.get("/v1/next").status_code == 401
    assert c.get("/v1/next", headers=_auth("lift_not-a-token")).status_code == 401
    r = c.get("/v1/next", headers=_auth(tok["judge"]))
    assert r.status_code == 403 and "rate" in r.json()["error"]["message"]
    assert c.post("/v1/items", headers=_auth(tok["alice"]), data={"prompt": "x"}).status_code == 403
    for page in ("/", "/overview", "/healthz"):
        assert c.get(page).status_code == 200, page
    assert "frame-ancestors 'none'" in c.get("/").headers["content-security-policy"]
    assert c.get("/static/..%2Fstore.py").status_code == 404
    # the token names the annotator; the header cannot override it
    me = c.get("/v1/me", headers={**_auth(tok["bob"]), "x-lift-annotator": "alice"}).json()
    assert me["annotator"] == "bob"
    item = c.get("/v1/next", headers=_auth(tok["bob"])).json()["item"]["item_id"]
    assert c.post(f"/v1/items/{item}:skip", headers=_auth(tok["judge"])).status_code == 403
    assert c.post(f"/v1/items/{item}:skip", headers=_auth(tok["bob"])).json()["skipped"] == 1
    assert c.post("/v1/undo", headers=_auth(tok["carol"])).json()["undone"] is None
    assert c.post("/v1/undo", headers=_auth(tok["bob"])).json()["undone"]["kind"] == "skip"


def test_upload_items(service, tokens) -> None:
    path, tok = tokens
    c, _ = service(auth_file=path)
    boss = _auth(tok["boss"])
    files = {"video": ("v.mp4", _mp4(7), "video/mp4")}
    r = c.post("/v1/items", headers=boss, files=files, data={"prompt": "a cat naps"})
    assert r.status_code == 201, r.text
    item_id = r.json()["item_id"]
    again = c.post("/v1/items", headers=boss, files=files, data={"prompt": "a cat naps"})
    assert again.status_code == 200 and again.json() == {"item_id": item_id, "created": False}
    bad = c.post("/v1/items", headers=boss, json={"video_b64": "bm90IGEgdmlkZW8=", "prompt": "x"})
    assert bad.status_code == 400 and "not a video" in bad.json()["error"]["message"]
    assert c.get("/v1/info", headers=boss).json()["items"] == N_VIDEOS + 1
    v = c.get(f"/v1/items/{item_id}/video", headers=_auth(tok["alice"]))
    assert v.status_code == 200 and v.content == _mp4(7)


def test_import_refuses_paths_out(tmp_path: Path, videos: Path, service) -> None:
    _, engine = service()
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(_mp4(3))
    inside = tmp_path / "in"
    inside.mkdir()
    listing = inside / "items.jsonl"
    listing.write_text(json.dumps({"video": "../outside.mp4", "prompt": "escape"}) + "\n")
    with pytest.raises(ImportRefused, match="outside"):
        import_source(engine.store, listing, 10**7, 1000)
    with pytest.raises(ImportRefused, match="outside"):
        import_source(engine.store, inside, 10**7, 1000)  # the directory's items.jsonl
    listing.unlink()
    os.symlink(outside, inside / "link.mp4")
    (inside / "link.txt").write_text("a symlink out")
    with pytest.raises(ImportRefused, match="symlink"):
        import_source(engine.store, inside, 10**7, 1000)
    r = CliRunner().invoke(
        cli, ["feedback", "serve", "--videos", str(inside), "--data", str(tmp_path / "d")]
    )
    assert r.exit_code == 2 and "outside" in r.output
    # a JSONL source: paths relative to it, extra fields ignored
    ok = videos / "list.jsonl"
    ok.write_text(json.dumps({"video": "clip0.mp4", "prompt": "listed", "seed": 1}) + "\n")
    try:
        report = import_source(engine.store, ok, 10**7, 1000)
    finally:
        ok.unlink()
    assert report.added == 1 and report.skipped == []


def test_settings_refuse_open_bind_without_tokens(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tokens file"):
        FeedbackSettings(host="0.0.0.0", data=tmp_path, auth_file=None)


def test_export_splits_by_video_and_validates(tmp_path: Path, service, tokens) -> None:
    path, tok = tokens
    c, engine = service(auth_file=path, overlap=2)
    _rate_all(c, _auth(tok["alice"]), ALICE)
    _rate_all(c, _auth(tok["bob"]), BOB)
    out = tmp_path / "hra"
    runner = CliRunner()
    args = ["feedback", "export", "--data", str(tmp_path / "data"), "--out", str(out)]
    r = runner.invoke(cli, [*args, "--test-fraction", "0.4", "--seed", "3"])
    assert r.exit_code == 0, r.output
    # semantic: alice/bob disagree on clips 2 and 4 (ties, left out); 3 dims x 5 items - 2
    assert "2 item-dimensions without consensus" in r.output
    sides = {}
    for side in ("train", "test"):
        v = runner.invoke(cli, ["hra", "validate", str(out / f"{side}.jsonl")])
        assert v.exit_code == 0, v.output
        sides[side] = [json.loads(x) for x in (out / f"{side}.jsonl").read_text().splitlines()]
    videos_of = {s: {rec["video"] for rec in recs} for s, recs in sides.items()}
    assert videos_of["train"] and videos_of["test"]
    assert not videos_of["train"] & videos_of["test"]  # never a video on both sides
    assert len(videos_of["test"]) == 2  # 0.4 of five videos
    assert sum(len(v) for v in sides.values()) == 3 * N_VIDEOS - 2
    bad = [
        rec
        for recs in sides.values()
        for rec in recs
        if rec["conversations"][1]["value"].startswith("Bad")
    ]
    assert bad and all(
        rec["conversations"][1]["value"] == f"Bad. {rec['dimension']} is bad here" for rec in bad
    )
    # the same database and seed write the same files
    again = tmp_path / "hra2"
    assert (
        runner.invoke(
            cli,
            [
                "feedback",
                "export",
                "--data",
                str(tmp_path / "data"),
                "--out",
                str(again),
                "--test-fraction",
                "0.4",
                "--seed",
                "3",
            ],
        ).exit_code
        == 0
    )
    assert (again / "test.jsonl").read_text() == (out / "test.jsonl").read_text()
    missing = runner.invoke(
        cli, ["feedback", "export", "--data", str(tmp_path / "nope"), "--out", str(again)]
    )
    assert missing.exit_code == 2 and "no feedback database" in missing.output
    assert engine.store.url.startswith("sqlite")


def test_export_names_the_flagged_items_it_holds(tmp_path: Path, service, tokens) -> None:
    # A flag is an annotator's note for the operator (wrong prompt, broken clip); an export
    # that silently trains on a flagged item hides it, so the export names it.
    path, tok = tokens
    c, _ = service(auth_file=path, overlap=2)
    first = c.get("/v1/next", headers=_auth(tok["carol"])).json()["item"]["item_id"]
    r = c.post(f"/v1/items/{first}:flag", headers=_auth(tok["carol"]), json={"note": "wrong"})
    assert r.status_code == 200, r.text
    second = c.get("/v1/next", headers=_auth(tok["carol"])).json()["item"]["item_id"]
    c.post(f"/v1/items/{second}:flag", headers=_auth(tok["carol"]), json={"note": "oops"})
    assert c.post("/v1/undo", headers=_auth(tok["carol"])).status_code == 200  # not flagged
    _rate_all(c, _auth(tok["alice"]), ALICE)
    _rate_all(c, _auth(tok["bob"]), BOB)
    args = ["feedback", "export", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o")]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert "1 exported item flagged" in r.output
    assert first in r.output and second not in r.output and "/overview" in r.output


def _metric(c: TestClient, line_start: str) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {line_start}")


def test_closest_to_complete_first_and_metrics(service) -> None:
    c, _ = service(overlap=2)
    erin, fay = {"x-lift-annotator": "erin"}, {"x-lift-annotator": "fay"}
    order = []
    for _ in range(N_VIDEOS):  # erin skips through the queue: import order
        item = c.get("/v1/next", headers=erin).json()["item"]["item_id"]
        order.append(item)
        c.post(f"/v1/items/{item}:skip", headers=erin)
    assert len(set(order)) == N_VIDEOS
    bad = 'lift_feedback_ratings_total{dimension="motion_smoothness",label="bad"}'
    before = _metric(c, bad)
    third = order[2]
    r = c.post("/v1/ratings", headers=erin, json=_rating(third, "good", ms="bad"))
    assert r.status_code == 201  # rating an item one skipped is accepted
    assert _metric(c, bad) == before + 1
    assert _metric(c, "lift_feedback_items ") == N_VIDEOS
    # fay gets the item that already has a rating first, then import order
    assert c.get("/v1/next", headers=fay).json()["item"]["item_id"] == third
    c.post("/v1/ratings", headers=fay, json=_rating(third, "good"))
    assert _metric(c, "lift_feedback_items_complete ") == 1
    assert _metric(c, "lift_feedback_queue_remaining ") == N_VIDEOS - 1
    assert c.get("/v1/next", headers=fay).json()["item"]["item_id"] == order[0]
