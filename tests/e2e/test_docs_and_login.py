"""The first minutes in a browser: a wrong secret, then the right one; the API docs with no network.

Debian's Chromium against the API on a fresh database (no platform needed). For the docs, every host
but 127.0.0.1 resolves to nothing, so a page that still loads Swagger UI from a CDN renders blank.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Page, Request

from services.api.main import create_app
from tests.e2e.browser import CHROMIUM, chromium
from tests.e2e.platform import DEV_OPERATOR
from tests.integration.api.server import serving
from vpp.domain.slots import JST
from vpp.settings import load_settings

pytestmark = pytest.mark.integration

# Only the test server resolves; any other host (a CDN, a font service) fails to load.
_OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


@pytest.fixture
def base_url(db_url: str) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `make deps` (it installs the system packages)")
    with serving(create_app(load_settings(environment="development"), database_url=db_url)) as url:
        yield url


def _watch(page: Page, base: str) -> tuple[list[str], list[str]]:
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

    def on_request(request: Request) -> None:
        if not request.url.startswith((base, "data:", "blob:" + base)):
            foreign.append(request.url)

    page.on("request", on_request)
    return errors, foreign


def test_wrong_secret_shows_an_error_then_the_right_one_logs_in(base_url: str) -> None:
    with chromium() as browser:
        # A browser far from Japan: the page must still show Japan time.
        page = browser.new_page(locale="ja-JP", timezone_id="America/New_York")
        errors, _foreign = _watch(page, base_url)
        page.goto(base_url + "/")
        client_id, secret = DEV_OPERATOR
        page.locator("#client-id").fill(client_id)
        page.locator("#client-secret").fill(secret + "-wrong")
        page.locator("#login-submit").click()
        # With a Basic challenge Chromium would hold this request for its password dialog: no message.
        message = page.locator("#login-error")
        message.wait_for(state="visible", timeout=10_000)
        page.wait_for_function("() => document.querySelector('#login-error').textContent.length > 0", timeout=10_000)
        assert "シークレット" in message.inner_text(), message.inner_text()
        assert page.locator("#dashboard").is_hidden()

        page.locator("#client-secret").fill(secret)
        page.locator("#login-submit").click()
        page.locator("#dashboard").wait_for(state="visible", timeout=10_000)
        assert page.locator("#login").is_hidden()
        assert message.inner_text() == ""

        page.wait_for_function("() => document.querySelector('#updated').dataset.at !== undefined", timeout=15_000)
        shown = page.locator("#updated").inner_text()
        after = datetime.now(JST)
        # The poll finished moments ago: its HH:MM in JST is this minute's or the one before.
        assert shown in {f"{after:%H:%M}", f"{after - timedelta(minutes=1):%H:%M}"}, (shown, after)
    assert errors == []


def test_docs_render_without_network(base_url: str) -> None:
    with chromium(extra_args=[_OFFLINE]) as browser:
        page = browser.new_page()
        errors, foreign = _watch(page, base_url)
        page.goto(base_url + "/docs")
        page.locator(".swagger-ui .info .title").wait_for(timeout=15_000)
        assert "Kawasaki VPP API" in page.locator(".swagger-ui .info .title").inner_text()
        page.locator('.opblock-summary-path[data-path="/api/v1/oauth/token"]').wait_for(timeout=15_000)
        assert page.locator(".opblock").count() > 10

        # The VTN's own document, linked from /docs.
        page.locator("nav a", has_text="OpenADR 3.1.0 VTN").click()
        page.wait_for_url(base_url + "/docs/openadr")
        page.locator(".swagger-ui .info .title").wait_for(timeout=15_000)
        assert "OpenADR 3.1.0 VTN" in page.locator(".swagger-ui .info .title").inner_text()
        page.locator('.opblock-summary-path[data-path="/events"]').first.wait_for(timeout=15_000)
        assert page.locator(".servers select, .servers").first.inner_text().count("/openadr3/3.1.0") >= 1
        assert page.evaluate("() => document.documentElement.outerHTML").count("cdn") == 0
    assert foreign == []
    assert errors == []
