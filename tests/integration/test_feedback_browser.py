"""The annotation page in a real browser: rate by keyboard alone, export, read κ off the overview.

`lift feedback serve` runs as a subprocess with tokens for three annotators and an admin and
five small distinct videos. Debian's Chromium (headless, every host name but 127.0.0.1
unresolvable) loads the page. Annotator 1 signs in and rates all five videos with keys
only, typing reasons for the labels that are not good, undoing once and reading the
progress line; a third annotator flags one video (keyboard, with a note); annotator 2 rates
the same five with the mouse. The κ the overview page shows for annotators 1 and 2 must be
the κ of the labels this test chose (computed with lift.hra.kappa), the flag must be listed,
and the export must pass `lift hra validate`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from lift.auth import Scope, add_token
from lift.hra.kappa import cohen_kappa, fleiss_from_labels
from lift.video.encode import encode_video
from tools.browser import headless_chromium
from tools.processes import free_port, wait_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# Autoplay without a gesture (keyboard-only use) and a window the page lays out in.
FLAGS = ("--autoplay-policy=no-user-gesture-required", "--window-size=1280,1000")
LIFT = [sys.executable, "-m", "lift.cli.main"]
DIMS = ("semantic_consistency", "motion_smoothness", "video_fidelity")
LABELS = ("good", "normal", "bad")
# A prompt is hostile input: the page must show it as text, never as markup.
HOSTILE = "<img src=x onerror=\"document.title='pwned'\"> a blue square drifts"
PROMPTS = [
    "a red square slides to the right",
    "a green square falls down",
    HOSTILE,
    "a yellow square bounces in a corner",
    "a white square fades in the dark",
]
FLAG_NOTE = "the <b>file</b> looks broken"
# The labels (semantic consistency, motion smoothness, video fidelity) each annotator
# gives each video, by prompt index: they agree on some and not on others, so every
# dimension has a κ that is neither undefined nor 1.
ALICE = [
    ("good", "good", "bad"),
    ("good", "bad", "good"),
    ("normal", "good", "good"),
    ("bad", "good", "good"),
    ("good", "normal", "good"),
]
BOB = [
    ("good", "good", "bad"),
    ("normal", "bad", "good"),
    ("normal", "good", "normal"),
    ("bad", "normal", "good"),
    ("good", "normal", "good"),
]


@dataclass(frozen=True)
class Feedback:
    """The running service: its URL, data dir, tokens and which prompt each item shows."""

    url: str
    data: Path
    tokens: dict[str, str]
    env: dict[str, str]


def _clip(index: int) -> np.ndarray:
    """16 frames of 64x96: a square of its own colour moving its own way (distinct bytes)."""
    colours = [(220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 210, 40), (235, 235, 235)]
    frames = np.full((16, 64, 96, 3), 20, np.uint8)
    for t in range(16):
        x, y = 8 + (t * (index + 1)) % 64, 8 + (t * index) % 32
        frames[t, y : y + 20, x : x + 20] = colours[index]
    return frames


@pytest.fixture(scope="module")
def feedback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Feedback]:
    root = tmp_path_factory.mktemp("feedback")
    videos = root / "videos"
    videos.mkdir()
    with (videos / "items.jsonl").open("w") as f:
        for i, prompt in enumerate(PROMPTS):
            (videos / f"clip{i}.mp4").write_bytes(encode_video(_clip(i), 8.0, "mp4"))
            f.write(json.dumps({"video": f"clip{i}.mp4", "prompt": prompt}) + "\n")
    auth = root / "tokens.json"
    tokens = {
        "alice": add_token(auth, "alice", [Scope.RATE]),
        "bob": add_token(auth, "bob", [Scope.RATE]),
        "carol": add_token(auth, "carol", [Scope.RATE]),
        "boss": add_token(auth, "boss", [Scope.ADMIN]),
    }
    env = {**os.environ, "LIFT_AUTH_FILE": str(auth), "LIFT_FEEDBACK_LOG_LEVEL": "WARNING"}
    port = free_port()
    data = root / "data"
    log = root / "serve.log"
    cmd = [
        *LIFT,
        *("feedback", "serve", "--videos", str(videos / "items.jsonl"), "--data", str(data)),
        *("--overlap", "2", "--http-port", str(port), "--host", "127.0.0.1"),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(proc, f"{url}/readyz", "lift feedback serve", timeout_s=60)
    except Exception:
        proc.kill()
        proc.wait()
        raise AssertionError(f"the service did not start:\n{log.read_text()[-4000:]}") from None
    yield Feedback(url=url, data=data, tokens=tokens, env=env)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with headless_chromium(profile, FLAGS, page_load_timeout_s=30) as driver:
        yield driver


# ---- helpers ---------------------------------------------------------------------------------


def _keys(driver: WebDriver, *keys: str) -> None:
    """Type ``keys`` into whatever has the focus, as a person at the keyboard would."""
    ActionChains(driver).send_keys(*keys).perform()


def _ctrl(driver: WebDriver, key: str) -> None:
    ActionChains(driver).key_down(Keys.CONTROL).send_keys(key).key_up(Keys.CONTROL).perform()


def _wait(driver: WebDriver, what: str, condition: object, timeout_s: float = 30) -> object:
    return WebDriverWait(driver, timeout_s).until(condition, message=what)  # type: ignore[arg-type]


def _js(driver: WebDriver, script: str) -> object:
    return driver.execute_script(script)


def _item(driver: WebDriver) -> str:
    return str(_js(driver, "return document.body.dataset.itemId || ''"))


def _status(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "status").text


def _progress(driver: WebDriver) -> str:
    return driver.find_element(By.ID, "progress-text").text


def _active_id(driver: WebDriver) -> str:
    return str(_js(driver, "return document.activeElement ? document.activeElement.id : ''"))


def _wait_item(driver: WebDriver, previous: str) -> str:
    """Wait for an item other than ``previous`` whose video has loaded and plays."""
    _wait(
        driver,
        f"a new item after {previous!r} (status: {_status(driver)})",
        lambda d: _item(d) not in ("", previous),
    )
    _wait(
        driver,
        "the item's video to load (fetched with the token, played from a blob: URL)",
        lambda d: _js(
            d,
            "const v = document.getElementById('video');"
            "return v.src.startsWith('blob:') && v.readyState >= 2 && v.duration > 0",
        ),
    )
    return _item(driver)


def _prompt_index(driver: WebDriver) -> int:
    return PROMPTS.index(driver.find_element(By.ID, "prompt").text)


def _sign_in(driver: WebDriver, url: str, token: str) -> None:
    """Open the page in a fresh tab state and sign in by typing the token and Enter."""
    driver.get(f"{url}/")
    _js(driver, "sessionStorage.clear()")
    driver.get(f"{url}/")
    _wait(driver, "the token box", lambda d: d.find_element(By.ID, "token-input").is_displayed())
    assert _active_id(driver) == "token-input"
    _keys(driver, token, Keys.ENTER)


def _rate_by_keys(driver: WebDriver, labels: tuple[str, str, str], reason: str) -> None:
    """Choose the three labels with 1-9; type a reason wherever a label is not good."""
    for d, label in enumerate(labels):
        _keys(driver, str(3 * d + LABELS.index(label) + 1))
        if label == "good":
            assert _active_id(driver) == "", "good keeps the focus on the page"
        else:
            assert _active_id(driver) == f"reason-{DIMS[d]}", "not good moves into the reason"
            _keys(driver, f"{reason} ({DIMS[d]} is {label})", Keys.ESCAPE)
            assert _active_id(driver) == "", "Esc leaves the text box"


def _checked(driver: WebDriver) -> dict[str, str]:
    chosen: dict[str, str] = {}
    for b in driver.find_elements(By.CSS_SELECTOR, "button[role=radio][aria-checked=true]"):
        chosen[str(b.get_attribute("data-dimension"))] = str(b.get_attribute("data-label"))
    return chosen


# ---- the test ----------------------------------------------------------------------------


def test_rate_by_keyboard_export_and_read_agreement(
    browser: WebDriver, feedback: Feedback, tmp_path: Path
) -> None:
    d, url = browser, feedback.url

    # A wrong token: the server's message, and the page asks again.
    _sign_in(d, url, "lift_not-a-token")
    _wait(d, "the refusal of a wrong token", lambda d: _status(d) != "")
    assert d.find_element(By.ID, "token-input").is_displayed()

    # ---- annotator 1: keyboard only from here on ----
    _keys(d, feedback.tokens["alice"], Keys.ENTER)
    item = _wait_item(d, "")
    assert "rated 0 of 5, remaining 5" in _progress(d)
    assert d.find_element(By.ID, "submit").get_attribute("disabled") is not None

    # Video keys: loop off/on, pause, frame steps move the time by one frame.
    assert d.find_element(By.ID, "loop").get_attribute("aria-pressed") == "true"
    _keys(d, "l")
    assert d.find_element(By.ID, "loop").get_attribute("aria-pressed") == "false"
    assert _js(d, "return document.getElementById('video').loop") is False
    _keys(d, "l")
    _keys(d, ".")
    _wait(
        d,
        "a frame step to pause the video",
        lambda d: _js(d, "return document.getElementById('video').paused"),
    )
    _keys(d, *[","] * 20)  # more steps than the clip has frames: stops at the first
    _wait(
        d,
        "the first frame after stepping back",
        lambda d: "frame 1 / " in d.find_element(By.ID, "readout").text,
    )
    _keys(d, ".", ".")
    _wait(
        d,
        "frame 3 after two steps forward",
        lambda d: "frame 3 / " in d.find_element(By.ID, "readout").text,
    )
    _keys(d, " ")
    _wait(
        d, "Space to play", lambda d: not _js(d, "return document.getElementById('video').paused")
    )

    # A non-good label without a reason blocks the submit, and the page says why.
    _keys(d, "2")
    assert _active_id(d) == "reason-semantic_consistency"
    _keys(d, Keys.ESCAPE, Keys.ENTER)
    _wait(d, "the missing reason named", lambda d: "semantic consistency" in _status(d))
    assert _item(d) == item
    assert "write why semantic consistency is normal" in d.find_element(By.ID, "missing").text

    seen: dict[str, int] = {}
    undone = False
    for n in range(5):
        index = _prompt_index(d)
        seen[item] = index
        _rate_by_keys(d, ALICE[index], "alice sees it")
        assert _checked(d) == dict(zip(DIMS, ALICE[index], strict=True))
        if n == 1:
            # Submit from inside a reason box: choosing the same label again goes back
            # into its box (the reason typed there stays), then Ctrl+Enter.
            j = next(j for j, label in enumerate(ALICE[index]) if label != "good")
            _keys(d, str(3 * j + LABELS.index(ALICE[index][j]) + 1))
            assert _active_id(d) == f"reason-{DIMS[j]}"
            _ctrl(d, Keys.ENTER)
            item = _wait_item(d, item)
            assert "rated 2 of 5, remaining 3" in _progress(d)
            # Undo it: the same video comes back, the count goes down; rate it again.
            _keys(d, "u")
            _wait(d, "undo to bring the item back", lambda d: "undid the rating" in _status(d))
            item = _wait_item(d, item)
            assert seen[item] == index
            assert "rated 1 of 5, remaining 4" in _progress(d)
            assert _checked(d) == {}
            _rate_by_keys(d, ALICE[index], "alice sees it again")
            undone = True
        _keys(d, Keys.ENTER)
        if n < 4:
            item = _wait_item(d, item)
            assert f"rated {n + 1} of 5, remaining {4 - n}" in _progress(d)
    assert undone
    _wait(d, "the done message", lambda d: d.find_element(By.ID, "done").is_displayed())
    assert "rated 5 of 5, remaining 0" in _progress(d)
    assert sorted(seen.values()) == [0, 1, 2, 3, 4]
    assert d.title != "pwned"

    # ---- a third annotator flags the first video she gets, by keyboard, with a note ----
    _sign_in(d, url, feedback.tokens["carol"])
    flagged = _wait_item(d, "")
    _keys(d, "f")
    assert _active_id(d) == "flag-note"
    _keys(d, FLAG_NOTE, Keys.ENTER)
    _wait(d, "the flag taken", lambda d: "flagged" in _status(d))
    assert "rated 0 of 5, remaining 4 (flagged 1)" in _progress(d)

    # ---- annotator 2: the mouse ----
    _sign_in(d, url, feedback.tokens["bob"])
    item = _wait_item(d, "")
    for n in range(5):
        index = _prompt_index(d)
        prompt = d.find_element(By.ID, "prompt")
        if PROMPTS[index] == HOSTILE:
            assert prompt.find_elements(By.TAG_NAME, "img") == []
        labels = dict(zip(DIMS, BOB[index], strict=True))
        reasons = {dim: f"bob: {dim} is {lab}" for dim, lab in labels.items() if lab != "good"}
        if n == 2:
            # The same rating sent from elsewhere first (another tab): the page's submit
            # gets a 409, shows the server's message and moves on to the next video.
            sent = httpx.post(
                f"{url}/v1/ratings",
                headers={"Authorization": f"Bearer {feedback.tokens['bob']}"},
                json={"item_id": item, "labels": labels, "reasons": reasons},
                timeout=10,
            )
            assert sent.status_code == 201, sent.text
        for dim, label in labels.items():
            d.find_element(By.ID, f"label-{dim}-{label}").click()
            if label != "good":
                d.find_element(By.ID, f"reason-{dim}").send_keys(reasons[dim])
        d.find_element(By.ID, "submit").click()
        if n < 4:
            previous, item = item, _wait_item(d, item)
        if n == 2:
            assert "already rated" in _status(d) and previous in _status(d), _status(d)
            assert "error" in str(d.find_element(By.ID, "status").get_attribute("class"))
    _wait(d, "bob's done message", lambda d: d.find_element(By.ID, "done").is_displayed())
    assert "rated 5 of 5, remaining 0" in _progress(d)

    # ---- the overview, as the admin ----
    d.get(f"{url}/overview")
    _wait(d, "the admin token box", lambda d: d.find_element(By.ID, "token-input").is_displayed())
    _keys(d, feedback.tokens["boss"], Keys.ENTER)
    _wait(
        d,
        "the Cohen's κ row of alice and bob",
        lambda d: d.find_elements(By.CSS_SELECTOR, "#cohen tr[data-a][data-b]"),
    )
    pairs = {
        frozenset((str(r.get_attribute("data-a")), str(r.get_attribute("data-b")))): r
        for r in d.find_elements(By.CSS_SELECTOR, "#cohen tr[data-a][data-b]")
    }
    assert set(pairs) >= {frozenset(("alice", "bob"))}, set(pairs)
    row = pairs[frozenset(("alice", "bob"))]
    for j, dim in enumerate(DIMS):
        expected = cohen_kappa([a[j] for a in ALICE], [b[j] for b in BOB])
        assert expected is not None and -1 < expected < 1
        td = row.find_element(By.CSS_SELECTOR, f"td[data-dimension={dim}]")
        assert float(str(td.get_attribute("data-kappa"))) == pytest.approx(expected, abs=1e-9)
        assert td.text == f"{expected:.3f} (n 5)"
        fleiss = fleiss_from_labels([(a[j], b[j]) for a, b in zip(ALICE, BOB, strict=True)], LABELS)
        shown = d.find_element(By.CSS_SELECTOR, f"#fleiss tr[data-dimension={dim}] td.kappa")
        assert shown.text == f"{fleiss:.3f}"
    assert d.find_element(By.ID, "stat-coverage").text == "100.0 %"
    annotators = {
        r.get_attribute("data-annotator"): r.text
        for r in d.find_elements(By.CSS_SELECTOR, "#annotators tr[data-annotator]")
    }
    assert set(annotators) == {"alice", "bob", "carol"}
    assert annotators["carol"].split()[1:4] == ["0", "0", "1"]  # rated, skipped, flagged
    flags = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#flags tbody tr")]
    assert len(flags) == 1, flags
    assert flagged in flags[0] and "carol" in flags[0] and FLAG_NOTE in flags[0], flags
    assert d.find_elements(By.CSS_SELECTOR, "#flags b") == []  # the note is text, not markup

    # ---- export, validated by lift hra validate ----
    out = tmp_path / "export"
    done = subprocess.run(
        [
            *LIFT,
            "feedback",
            "export",
            "--data",
            str(feedback.data),
            "--out",
            str(out),
            "--test-fraction",
            "0.4",
            "--seed",
            "0",
        ],
        env=feedback.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for split in ("train", "test"):
        path = out / f"{split}.jsonl"
        assert path.read_text().strip(), f"{split}.jsonl is empty"
        check = subprocess.run(
            [*LIFT, "hra", "validate", str(path)],
            env=feedback.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 0, check.stdout + check.stderr
