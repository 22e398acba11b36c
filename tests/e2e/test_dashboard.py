"""The operations dashboard in headless Chromium against the running platform and its simulator.

Logs in on the page as the development operator, checks that nothing was logged as an error and that
both charts hold data, creates a DR event on the page, sees it in the timeline, and checks that a
simulated site received the event's signal over MQTT on ``vpp/v1/{site}/dr/signal``.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from tests.e2e.platform import DEV_OPERATOR, Platform, running_platform
from tests.support.waiting import wait_for
from vpp.mqtt import make_client

pytest.importorskip("playwright.sync_api")
from tests.e2e.browser import CHROMIUM, chromium, log_in

pytestmark = pytest.mark.integration

_CHART_POINTS = """(selector) => {
    const chart = Chart.getChart(document.querySelector(selector));
    if (!chart) return [];
    return chart.data.datasets.map((d) => d.data.filter((v) => v !== null && v !== undefined).length);
}"""


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `make deps` (it installs the system packages)")
    with running_platform(tmp_path) as running:
        yield running


class SignalWatcher:
    """Listens on every site's DR signal topic, as the simulated sites' gateways do."""

    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = make_client("e2e-signal-watcher")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.subscribe("vpp/v1/+/dr/signal", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put((message.topic, json.loads(message.payload)))

    def wait_for_event(
        self, event_id: str, match: Callable[[dict[str, Any]], bool] = lambda _body: True, timeout_s: float = 60.0
    ) -> tuple[str, dict[str, Any]]:
        """The first signal of `event_id` that `match`es; earlier ones are consumed."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                topic, body = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if body.get("event_id") == event_id and match(body):
                return topic, body
        raise AssertionError(f"no matching signal for {event_id} in {timeout_s} s")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_dashboard_end_to_end(platform: Platform) -> None:
    watcher = SignalWatcher(platform.broker_port)
    errors: list[str] = []
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="ja-JP", timezone_id="Asia/Tokyo")
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))

            log_in(page, platform.base_url, *DEV_OPERATOR)
            assert page.locator("html").get_attribute("lang") == "ja"
            assert page.locator("#global-error").is_hidden()

            # Charts: every supply series and the demand line of the region, the site's demand and target.
            region_points = page.evaluate(_CHART_POINTS, "#region-chart")
            assert len(region_points) == 5
            assert all(n > 0 for n in region_points), region_points
            site_points = page.evaluate(_CHART_POINTS, "#site-chart")
            assert site_points[0] > 0, site_points  # today's slots so far
            assert site_points[1] == 48, site_points  # the target line across the day
            assert page.locator("#sites-table tbody tr").count() == len(platform.site_ids)
            assert page.locator("#suff-today .value").inner_text().endswith("%")
            # A fiscal year with about a week of metered data: the card says the ratio covers only the
            # slots received, and mutes the figure, instead of showing it bare beside "completeness 3%".
            fy_warning = page.locator("#suff-fy .partial-warning")
            fy_warning.wait_for(timeout=15_000)
            assert "実測データは期間の" in fy_warning.inner_text()
            assert page.locator("#suff-fy .value.partial").count() == 1
            page.locator("#ven-table tbody tr").first.wait_for(timeout=15_000)  # the OpenADR VEN panel rendered

            page.locator("#dr-kw").fill("5")
            page.locator("#dr-create").click()
            message = page.locator("#dr-message")
            message.wait_for(state="visible")
            wait_for(message.inner_text, lambda text: "dr-" in text, timeout_s=10)
            event_id = next(word for word in message.inner_text().split() if word.startswith("dr-"))
            row = page.locator(f'#dr-table tr[data-event="{event_id}"]')
            row.wait_for(state="visible", timeout=15_000)

            topic, signal = watcher.wait_for_event(event_id)
            site_id = topic.split("/")[2]
            assert site_id in platform.site_ids
            assert topic == f"vpp/v1/{site_id}/dr/signal"
            assert signal["status"] == "active"

            # The simulated site acknowledged: the timeline shows the event dispatched and acknowledged.
            page.locator(f'#dr-table tr[data-event="{event_id}"] .chip.current.st-acknowledged').wait_for(
                timeout=30_000
            )

            # Adjust on the page: a new revision goes out; then cancel: the sites get a retained cancellation.
            row.locator(".kw-input").fill("7")
            row.locator("button", has_text="変更").click()
            topic, signal = watcher.wait_for_event(event_id, lambda body: body["revision"] >= 2)
            assert signal["status"] == "active"
            page.locator(f'#dr-table tr[data-event="{event_id}"]').locator("button", has_text="取消").click()
            topic, signal = watcher.wait_for_event(event_id, lambda body: body["status"] == "cancelled")
            page.locator(f'#dr-table tr[data-event="{event_id}"] .chip.current.st-cancelled').wait_for(timeout=30_000)

            # An "X kW more" event from the page: the sites get import floors to absorb, e.g. a PV surplus.
            message.evaluate("node => { node.textContent = ''; }")
            page.locator("#dr-direction").select_option("increase")
            page.locator("#dr-kw").fill("3")
            page.locator("#dr-create").click()
            wait_for(message.inner_text, lambda text: "dr-" in text, timeout_s=10)
            increase_id = next(word for word in message.inner_text().split() if word.startswith("dr-"))
            page.locator(f'#dr-table tr[data-event="{increase_id}"] .chip.dir-increase').wait_for(timeout=15_000)
            _topic, signal = watcher.wait_for_event(increase_id)
            kinds = {p["type"] for i in signal["intervals"] for p in i["payloads"]}
            assert "IMPORT_FLOOR" in kinds, signal

            page.locator("#lang-toggle").click()
            assert page.locator("#sites-title, [data-i18n=sites_title]").first.inner_text() == "Sites"
            page.wait_for_timeout(500)
    finally:
        watcher.close()
    assert errors == []
