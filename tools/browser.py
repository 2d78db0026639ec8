"""Debian's Chromium, headless, for the browser tests (`make setup` installs it and its driver).

One place for how the tests start it: the flags this machine's closed network needs (no
background connections, every host name but 127.0.0.1 unresolvable, so a page that still
reached for a CDN would show it), a throw-away profile, and an explicit driver path so
selenium never tries to download one.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # No CDN can answer: every name but the service's own address fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)


@contextlib.contextmanager
def headless_chromium(
    profile: Path, extra_flags: Sequence[str] = (), page_load_timeout_s: float = 60
) -> Iterator[WebDriver]:
    """A selenium WebDriver on headless Chromium with ``profile`` as its user data dir
    (removed afterwards); ``extra_flags`` are added to :data:`FLAGS`."""
    import pytest
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: `make setup` installs chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, *extra_flags):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(page_load_timeout_s)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
