"""The feedback service against hostile files and callers: FIFOs, swapped links, NULs,
ratings beyond the overlap, repeated skips, concurrent submits, export folders."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from lift.cli.main import app as cli
from lift.services.feedback.engine import FeedbackEngine
from lift.services.feedback.http_app import create_app
from lift.services.feedback.queue import import_source
from lift.services.feedback.settings import FeedbackSettings
from lift.video.encode import encode_video

GOOD = {"semantic_consistency": "good", "motion_smoothness": "good", "video_fidelity": "good"}


def _mp4(seed: int) -> bytes:
    frames = np.random.default_rng(seed).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    return encode_video(frames, 8.0)


def _clips(d: Path, n: int) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"clip{i}.mp4").write_bytes(_mp4(i))
        (d / f"clip{i}.txt").write_text(f"a red ball bounces, take {i}\n")
    return d


Start = Callable[..., tuple[TestClient, FeedbackEngine]]


@pytest.fixture
def start(tmp_path: Path) -> Start:
    def run(videos: list[Path], **kw: object) -> tuple[TestClient, FeedbackEngine]:
        kw.setdefault("data", tmp_path / "data")
        settings = FeedbackSettings(videos=videos, **kw)  # type: ignore[arg-type]
        engine = FeedbackEngine(settings)
        engine.load()
        return TestClient(create_app(engine), base_url="http://127.0.0.1"), engine

    return run


def _as(name: str) -> dict[str, str]:
    return {"x-lift-annotator": name}


def test_import_skips_fifos_non_videos_and_nul_prompts_without_hanging(
    tmp_path: Path, start: Start
) -> None:
    d = _clips(tmp_path / "v", 2)
    os.mkfifo(d / "pipe.mp4")  # a FIFO named like a video: reading it would block forever
    (d / "pipe.txt").write_text("a pipe")
    (d / "clip1.txt").unlink()
    os.mkfifo(d / "clip1.txt")  # clip1's prompt is a FIFO now
    (d / "fake.mp4").write_text("not a video at all")
    (d / "fake.txt").write_text("fake")
    (d / "nul.mp4").write_bytes(_mp4(7))
    (d / "nul.txt").write_text("a prompt with a \x00 inside")
    with (d / "huge.mp4").open("wb") as f:
        f.truncate(10**7 + 1)  # sparse: one byte over the limit, never read
    (d / "huge.txt").write_text("huge")
    _, engine = start([])
    box: list[object] = []
    t = threading.Thread(
        target=lambda: box.append(import_source(engine.store, d, 10**7, 1000)), daemon=True
    )
    t.start()
    t.join(timeout=60)
    assert not t.is_alive(), "the import hung on a FIFO"
    report = box[0]
    text = "\n".join(report.skipped)  # type: ignore[attr-defined]
    assert report.added == 1, text  # type: ignore[attr-defined]
    assert "pipe.mp4 is not a regular file" in text
    assert "clip1.txt: cannot read the prompt" in text and "clip1.mp4: no prompt" in text
    assert "fake.mp4 is not a video the service can read" in text and "Errno" not in text
    assert "NUL" in text
    assert "huge.mp4 is 10000001 bytes, over the 10000000 limit" in text


def test_empty_queue_says_how_to_fill_it(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        start([])
    assert "the queue is empty" in caplog.text and "--videos" in caplog.text


def test_no_rating_beyond_the_overlap_unless_offered(tmp_path: Path, start: Start) -> None:
    c, _ = start([_clips(tmp_path / "v", 2)], overlap=1)
    first = c.get("/v1/next", headers=_as("alice")).json()["item"]["item_id"]
    assert c.post("/v1/ratings", headers=_as("alice"), json={"item_id": first, "labels": GOOD})
    # bob was never offered the complete item: his rating would be one too many
    r = c.post("/v1/ratings", headers=_as("bob"), json={"item_id": first, "labels": GOOD})
    assert r.status_code == 409 and "already has its 1 ratings" in r.json()["error"]["message"]
    # bob and carol are both offered the last open item; both ratings are kept
    second = c.get("/v1/next", headers=_as("bob")).json()["item"]["item_id"]
    assert c.get("/v1/next", headers=_as("carol")).json()["item"]["item_id"] == second
    for who in ("bob", "carol"):
        r = c.post("/v1/ratings", headers=_as(who), json={"item_id": second, "labels": GOOD})
        assert r.status_code == 201, r.text
    assert c.get("/v1/overview").json()["ratings"] == 3
    # an offer is used up by skipping: coming back to the item once it is complete is refused
    c2, _ = start([_clips(tmp_path / "w", 1)], overlap=1, data=tmp_path / "data2")
    third = c2.get("/v1/next", headers=_as("dave")).json()["item"]["item_id"]
    assert c2.post(f"/v1/items/{third}:skip", headers=_as("dave")).status_code == 200
    c2.get("/v1/next", headers=_as("erin"))
    assert c2.post("/v1/ratings", headers=_as("erin"), json={"item_id": third, "labels": GOOD})
    r = c2.post("/v1/ratings", headers=_as("dave"), json={"item_id": third, "labels": GOOD})
    assert r.status_code == 409 and "already has its 1 ratings" in r.text


def test_skip_or_flag_twice_or_after_rating_is_refused(tmp_path: Path, start: Start) -> None:
    c, _ = start([_clips(tmp_path / "v", 3)], overlap=2)
    a = _as("alice")
    one = c.get("/v1/next", headers=a).json()["item"]["item_id"]
    assert (
        c.post("/v1/ratings", headers=a, json={"item_id": one, "labels": GOOD}).status_code == 201
    )
    r = c.post(f"/v1/items/{one}:skip", headers=a)
    assert r.status_code == 409 and "already rated" in r.json()["error"]["message"]
    two = c.get("/v1/next", headers=a).json()["item"]["item_id"]
    assert c.post(f"/v1/items/{two}:skip", headers=a).status_code == 200
    for call in (f"/v1/items/{two}:skip", f"/v1/items/{two}:flag"):
        r = c.post(call, headers=a)
        assert r.status_code == 409 and "already skipped" in r.json()["error"]["message"]
    me = c.get("/v1/me", headers=a).json()
    assert (me["rated"], me["skipped"], me["flagged"], me["remaining"], me["total"]) == (
        1,
        1,
        0,
        1,
        3,
    )


def test_concurrent_double_submit_keeps_one_rating(tmp_path: Path, start: Start) -> None:
    c, _ = start([_clips(tmp_path / "v", 1)], overlap=2)
    item = c.get("/v1/next", headers=_as("alice")).json()["item"]["item_id"]
    codes: list[int] = []
    body = {"item_id": item, "labels": GOOD}

    def submit() -> None:
        codes.append(c.post("/v1/ratings", headers=_as("alice"), json=body).status_code)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [201, 409, 409, 409]
    assert c.get("/v1/me", headers=_as("alice")).json()["rated"] == 1


def test_video_is_not_served_once_swapped_for_a_link_or_fifo(tmp_path: Path, start: Start) -> None:
    d = _clips(tmp_path / "v", 2)
    c, engine = start([d])
    a = _as("alice")
    ids = {Path(i.video_path).name: i.item_id for i in engine.store.items()}
    assert c.get(f"/v1/items/{ids['clip0.mp4']}/video", headers=a).content == _mp4(0)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"operator's private file")
    (d / "clip0.mp4").unlink()
    os.symlink(secret, d / "clip0.mp4")
    r = c.get(f"/v1/items/{ids['clip0.mp4']}/video", headers=a)
    assert r.status_code == 404 and b"private" not in r.content
    assert "skip this item" in r.json()["error"]["message"]
    (d / "clip1.mp4").unlink()
    os.mkfifo(d / "clip1.mp4")
    r = c.get(f"/v1/items/{ids['clip1.mp4']}/video", headers=a)
    assert r.status_code == 404


def test_upload_refuses_nul_prompts_and_oversized_base64(start: Start) -> None:
    c, _ = start([], max_video_bytes=64 * 1024)
    video = _mp4(1)
    r = c.post(
        "/v1/items", files={"video": ("a.mp4", video, "video/mp4")}, data={"prompt": "a\x00b"}
    )
    assert r.status_code == 400 and "NUL" in r.json()["error"]["message"]
    r = c.post(
        "/v1/items",
        files={"video": ("a.mp4", video, "video/mp4")},
        data={"prompt": "a cat <video> dances"},
    )
    assert r.status_code == 400 and "<video>" in r.json()["error"]["message"]
    r = c.post("/v1/items", files={"video": ("a.mp4", b"nope", "video/mp4")}, data={"prompt": "x"})
    assert r.status_code == 400 and "Errno" not in r.json()["error"]["message"]
    big = base64.b64encode(b"\0" * (64 * 1024 + 1)).decode()
    r = c.post("/v1/items", json={"video_b64": big, "prompt": "too big"})
    assert r.status_code == 413 and "limit is 65536" in r.json()["error"]["message"]


def test_export_folder_rules(tmp_path: Path, start: Start) -> None:
    c, _ = start([_clips(tmp_path / "v", 2)], overlap=1)
    runner = CliRunner()
    args = ["feedback", "export", "--data", str(tmp_path / "data")]
    out = tmp_path / "hra"
    r = runner.invoke(cli, [*args, "--out", str(out)])
    assert r.exit_code == 1 and "nothing to export" in r.output
    assert not out.exists()  # no empty files left behind
    for _ in range(2):
        item = c.get("/v1/next", headers=_as("alice")).json()["item"]["item_id"]
        c.post("/v1/ratings", headers=_as("alice"), json={"item_id": item, "labels": GOOD})
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    r = runner.invoke(cli, [*args, "--out", str(a_file)])
    assert r.exit_code == 2 and "is a file" in r.output
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    r = runner.invoke(cli, [*args, "--out", str(foreign)])
    assert r.exit_code == 2 and "notes.txt" in r.output
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    r = runner.invoke(cli, [*args, "--out", str(out)])
    assert r.exit_code == 0, r.output
    stale = out / "videos" / "0123456789abcdef.mp4"  # an earlier export's video
    stale.write_bytes(b"old")
    r = runner.invoke(cli, [*args, "--out", str(out)])  # exporting again replaces it
    assert r.exit_code == 0, r.output
    assert not stale.exists() and len(list((out / "videos").iterdir())) == 2
    lines = (out / "train.jsonl").read_text().splitlines()
    lines += (out / "test.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(x)["video"].startswith("videos/") for x in lines)
    v = runner.invoke(cli, ["hra", "validate", str(out / "train.jsonl")])
    assert v.exit_code == 0, v.output


def test_sample_says_which_address_it_cannot_reach(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a cat on a sofa\n")
    runner = CliRunner()
    base = ["feedback", "sample", "--prompts", str(prompts), "--generator", "127.0.0.1:1"]
    r = runner.invoke(cli, [*base, "--feedback", "http://127.0.0.1:1"])
    assert r.exit_code == 1 and "cannot reach the feedback service at http://127.0.0.1:1" in (
        r.output
    )
    r = runner.invoke(cli, [*base, "--feedback", "127.0.0.1:8083"])
    assert r.exit_code == 2 and "http:// or https:// URL" in r.output
    r = runner.invoke(cli, [*base, "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "cannot reach the generator at 127.0.0.1:1" in r.output
    r = runner.invoke(cli, ["feedback", "serve", "--http-port", "99999"])
    assert r.exit_code == 2 and "65535" in r.output


def test_video_ranges(tmp_path: Path, start: Start) -> None:
    c, engine = start([_clips(tmp_path / "v", 1)])
    item = engine.store.items()[0].item_id
    url, a = f"/v1/items/{item}/video", _as("alice")
    whole = _mp4(0)
    r = c.get(url, headers={**a, "range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == whole[10:20]
    r = c.get(url, headers={**a, "range": "bytes=-5"})
    assert r.status_code == 206 and r.content == whole[-5:]
    for bad in ("bytes=10-5", "bytes=abc", "items=0-1", "bytes=-", "bytes=" + "0-1," * 20):
        r = c.get(url, headers={**a, "range": bad})
        assert r.status_code == 400, bad
        assert "send bytes=START-END" in r.json()["error"]["message"]
    r = c.get(url, headers={**a, "range": f"bytes={len(whole) + 10}-"})
    assert r.status_code == 416


def test_listing_with_a_nul_path_is_refused_and_two_prompts_make_two_items(
    tmp_path: Path, start: Start
) -> None:
    d = tmp_path / "v"
    d.mkdir()
    (d / "a.mp4").write_bytes(_mp4(1))
    lines = [{"video": "a.mp4", "prompt": "first"}, {"video": "a.mp4", "prompt": "second"}]
    (d / "prompts.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    _, engine = start([d])
    assert sorted(i.prompt for i in engine.store.items()) == ["first", "second"]
    (d / "prompts.jsonl").write_text(json.dumps({"video": "a\x00.mp4", "prompt": "nul"}) + "\n")
    r = CliRunner().invoke(
        cli, ["feedback", "serve", "--videos", str(d), "--data", str(tmp_path / "d2")]
    )
    assert r.exit_code == 2 and "prompts.jsonl:1" in r.output and "not a usable path" in r.output


def test_start_up_problems_say_what_to_fix(tmp_path: Path) -> None:
    import socket

    from lift.services.feedback.server import FeedbackRunner

    runner = CliRunner()
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    r = runner.invoke(cli, ["feedback", "serve", "--data", str(a_file), "--http-port", "0"])
    assert r.exit_code == 1 and "is a file; give a folder" in r.output
    garbage = tmp_path / "g"
    garbage.mkdir()
    (garbage / "feedback.sqlite3").write_text("not a database")
    r = runner.invoke(
        cli, ["feedback", "export", "--data", str(garbage), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 2 and "file is not a database" in r.output
    assert "sqlalche.me" not in r.output
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}.*--http-port"):
            FeedbackRunner(FeedbackSettings(data=tmp_path / "d", http_port=port))
    finally:
        held.close()


def test_ready_line_gives_a_url_a_browser_can_open(tmp_path: Path) -> None:
    from lift.services.feedback.server import FeedbackRunner

    for host, shown in (("127.0.0.1", "http://127.0.0.1:"), ("::1", "http://[::1]:")):
        try:
            runner = FeedbackRunner(FeedbackSettings(data=tmp_path / "d", host=host, http_port=0))
        except OSError:  # no IPv6 on this machine
            continue
        try:
            line = runner.ready_line()
        finally:
            asyncio.run(runner.stop(grace_s=0))  # never started: closes the socket and store
        assert f"open {shown}{runner.http_port}/ to rate" in line
        assert "/overview" in line and "type their name" in line and "sqlite:///" in line


def test_a_video_rewritten_in_place_is_neither_served_nor_exported(
    tmp_path: Path, start: Start
) -> None:
    d = _clips(tmp_path / "v", 2)
    c, engine = start([d], overlap=1)
    a = _as("alice")
    for _ in range(2):
        item = c.get("/v1/next", headers=a).json()["item"]
        c.get(item["video_url"], headers=a)
        c.post("/v1/ratings", headers=a, json={"item_id": item["item_id"], "labels": GOOD})
    first = next(i for i in engine.store.items() if i.video_path.endswith("clip0.mp4"))
    (d / "clip0.mp4").write_bytes(_mp4(0) + b"\0")  # other bytes at the rated path
    r = c.get(f"/v1/items/{first.item_id}/video", headers=a)
    assert r.status_code == 404 and "changed" in r.json()["error"]["message"]
    out = tmp_path / "hra"
    r = CliRunner().invoke(
        cli, ["feedback", "export", "--data", str(tmp_path / "data"), "--out", str(out)]
    )
    assert r.exit_code == 0 and "1 items whose video is gone or changed" in r.output
    assert f"left out (video gone or changed since it was queued): {first.item_id}" in r.output
    assert [p.name for p in (out / "videos").iterdir()] != [f"{first.item_id}.mp4"]
    assert len(list((out / "videos").iterdir())) == 1


def test_sample_prompt_ids_cannot_name_files_outside_out(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "out"
    base = ["feedback", "sample", "--generator", "127.0.0.1:1", "--out", str(out)]
    prompts = tmp_path / "p.jsonl"
    for ids, says in (
        (["../../escape"], "must be 1-64 letters"),
        ([".hidden"], "must be 1-64 letters"),
        (["a", "a"], "on two lines"),
    ):
        lines = [json.dumps({"id": i, "prompt": f"prompt {k}"}) for k, i in enumerate(ids)]
        prompts.write_text("\n".join(lines) + "\n")
        r = runner.invoke(cli, [*base, "--prompts", str(prompts)])
        assert r.exit_code == 2 and says in r.output, r.output
    assert not out.exists() and not (tmp_path / "escape-s0.mp4").exists()


def test_sample_out_that_is_a_file(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    a_file = tmp_path / "f"
    a_file.write_text("x")
    args = ["feedback", "sample", "--prompts", str(prompts), "--generator", "127.0.0.1:1"]
    r = CliRunner().invoke(cli, [*args, "--out", str(a_file)])
    assert r.exit_code == 2 and "cannot write into --out" in r.output


def test_one_server_per_data_dir(tmp_path: Path) -> None:
    from lift.services.feedback.server import FeedbackRunner

    settings = FeedbackSettings(data=tmp_path / "d", http_port=0)
    first = FeedbackRunner(settings)
    try:
        with pytest.raises(ValueError, match="another `lift feedback serve` is using"):
            FeedbackRunner(settings)
    finally:
        asyncio.run(first.stop(grace_s=0))
    second = FeedbackRunner(settings)  # free again once the first let go
    asyncio.run(second.stop(grace_s=0))


def test_uploads_folder_may_be_a_link_to_another_disk(tmp_path: Path, start: Start) -> None:
    c, _ = start([])
    r = c.post("/v1/items", files={"video": ("a.mp4", _mp4(5), "video/mp4")}, data={"prompt": "p"})
    assert r.status_code == 201, r.text
    item = r.json()["item_id"]
    uploads = tmp_path / "data" / "uploads"
    moved = tmp_path / "bigger-disk"
    uploads.rename(moved)
    os.symlink(moved, uploads)  # the operator moved the uploads and left a link
    v = c.get(f"/v1/items/{item}/video", headers=_as("alice"))
    assert v.status_code == 200 and v.content == _mp4(5)
