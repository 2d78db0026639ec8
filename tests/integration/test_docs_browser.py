"""/docs and /redoc render in a real browser with no internet: the assets are the service's own.

Debian's Chromium (installed by `make setup`) runs headless with every host name but
127.0.0.1 unresolvable, so a page that still fetched Swagger UI or ReDoc from a CDN
would stay blank. Finding the operations in the rendered DOM proves the bundles were
served by the service, loaded, and read its OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.service.conftest import RunningCritic, start_critic
from tools.browser import headless_chromium

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCritic]:
    running, stop = start_critic(video_root=tmp_path_factory.mktemp("videos"))
    yield running
    stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    with headless_chromium(profile, page_load_timeout_s=60) as driver:
        yield driver


def _resources(driver: WebDriver) -> list[str]:
    names: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    return names


def test_swagger_ui_renders_the_operations_from_local_assets(
    browser: WebDriver, service: RunningCritic
) -> None:
    browser.get(f"{service.http_url}/docs")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
    )
    operations = {
        (
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
            block.find_element(By.CSS_SELECTOR, ".opblock-summary-path").get_attribute("data-path"),
        )
        for block in browser.find_elements(By.CSS_SELECTOR, ".opblock")
    }
    assert {("POST", "/v1/critiques"), ("POST", "/v1/scores"), ("GET", "/v1/info")} <= operations
    loaded = _resources(browser)
    assert any(u.endswith("/static/docs/swagger-ui-bundle.js") for u in loaded), loaded
    assert all(u.startswith(service.http_url) for u in loaded), loaded


def test_redoc_renders_the_operations_from_local_assets(
    browser: WebDriver, service: RunningCritic
) -> None:
    browser.get(f"{service.http_url}/redoc")
    summary = "Judge one video: labels, scores, reasons and time-stamped issues."
    WebDriverWait(browser, 60).until(lambda d: summary in d.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "/v1/critiques" in text and "/v1/scores" in text
    loaded = _resources(browser)
    assert any(u.endswith("/static/docs/redoc.standalone.js") for u in loaded), loaded
    # ReDoc's bundle always links its maker's logo (sidebar footer); offline the image
    # fails and ReDoc hides it. Nothing else may come from elsewhere.
    foreign = [u for u in loaded if not u.startswith(service.http_url)]
    assert foreign in ([], [REDOCLY_LOGO]), loaded
