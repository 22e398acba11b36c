"""Debian's Chromium driven by Playwright's bundled driver (no browser download), and the page's login."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

__all__ = ["CHROMIUM", "chromium", "log_in"]

CHROMIUM = Path("/usr/bin/chromium")
_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(extra_args: list[str] | None = None) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        args = _ARGS + list(extra_args or [])
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, base_url: str, client_id: str, secret: str) -> None:
    """Open the dashboard, log in through its form and wait for the first poll to finish."""
    page.goto(base_url + "/")
    page.locator("#client-id").fill(client_id)
    page.locator("#client-secret").fill(secret)
    page.locator("#login-submit").click()
    page.locator("#dashboard").wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#updated').dataset.at !== undefined")
