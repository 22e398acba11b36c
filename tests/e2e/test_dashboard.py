"""The operations dashboard in headless Chromium against the running platform and its simulator.

Logs in on the page as the development operator, checks that nothing was logged as an error and that
both charts hold data, creates a DR event on the page, sees it in the timeline, and checks that a
simulated site received each revision of the event's signal over MQTT on ``vpp/v1/{site}/dr/signal``:
its EMS acknowledges every signal it receives there, and the platform stores the acknowledgement.
(`vpp up`'s broker runs the production rules, so no outside client may read the sites' signals.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.e2e.browser import CHROMIUM, chromium, log_in
from tests.e2e.platform import DEV_OPERATOR, Platform, running_platform
from tests.support.waiting import wait_for

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
    # Four sites: the fourth (site-00003) has a battery and no vans, so the peak programme can steer it.
    with running_platform(tmp_path, sites=4) as running:
        yield running


class AckWatcher:
    """The simulated sites' acknowledgements as the platform stored them: a site acknowledges a revision
    of an event only after its EMS received that signal on its own topic."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def _latest(self, event_id: str, min_revision: int) -> tuple[str, int] | None:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(
                """SELECT s.site_id, a.revision FROM dr_acks a JOIN sites s ON s.id = a.site_pk
                   WHERE a.event_id = %s AND a.revision >= %s AND a.accepted
                   ORDER BY a.revision DESC, a.id DESC LIMIT 1""",
                (event_id, min_revision),
            ).fetchone()
        return (str(row[0]), int(row[1])) if row else None

    def wait_for_ack(self, event_id: str, min_revision: int = 1, timeout_s: float = 60.0) -> tuple[str, int]:
        """(site id, revision) of the newest accepted acknowledgement of `event_id` at `min_revision` or later."""
        found = wait_for(lambda: self._latest(event_id, min_revision), lambda row: row is not None, timeout_s)
        assert found is not None
        return found

    def floors_sent(self, event_id: str, site_id: str) -> list[float] | None:
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(
                """SELECT es.import_floor_kw FROM dr_event_sites es JOIN dr_events e ON e.id = es.event_pk
                   JOIN sites s ON s.id = es.site_pk WHERE e.event_id = %s AND s.site_id = %s""",
                (event_id, site_id),
            ).fetchone()
        return list(row[0]) if row and row[0] is not None else None


def _programme_events(db_url: str) -> dict[str, str]:
    """Status of the peak programme's event at each site."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT site_ids[1], status FROM dr_events WHERE source = 'peak_programme'").fetchall()
    return {str(site_id): str(status) for site_id, status in rows}


def test_dashboard_end_to_end(platform: Platform) -> None:
    watcher = AckWatcher(platform.db_url)
    errors: list[str] = []
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

        # The day's peak programme, enrolled from the site panel: the depot (25 vans: the LP re-plan) and a
        # battery site without vans (the stochastic programme); checked at the end (the scheduler's next pass
        # sends the first limits at most a minute into a slot, while the DR steps below run).
        status = page.locator("#peak-programme .pp-status")
        for site_id in ("yamato-takatsu", "site-00003"):
            page.locator(f'#sites-table tr[data-site="{site_id}"]').click()
            wait_for(status.inner_text, lambda text: "未登録" in text, timeout_s=10)
            page.locator("#pp-toggle").click()
            page.locator(f'#sites-table tr[data-site="{site_id}"] .badge.pp').wait_for(timeout=10_000)

        # The DR strip's hour marks fall on whole JST hours.
        marks = page.locator("#dr-strip .tick").all_inner_texts()
        assert marks, "the strip has hour marks"
        assert all(mark.endswith(":00") for mark in marks), marks

        page.locator("#dr-kw").fill("5")
        page.locator("#dr-create").click()
        message = page.locator("#dr-message")
        message.wait_for(state="visible")
        wait_for(message.inner_text, lambda text: "dr-" in text, timeout_s=10)
        event_id = next(word for word in message.inner_text().split() if word.startswith("dr-"))
        # A value the browser itself refuses (no request is made): that event's "created" does not stay beside it.
        page.locator("#dr-kw").fill("-5")
        page.locator("#dr-create").click()
        wait_for(message.inner_text, lambda text: event_id not in text, timeout_s=5)
        row = page.locator(f'#dr-table tr[data-event="{event_id}"]')
        row.wait_for(state="visible", timeout=15_000)

        site_id, first_revision = watcher.wait_for_ack(event_id)
        assert site_id in platform.site_ids

        # The simulated site acknowledged: the timeline shows the event dispatched and acknowledged.
        page.locator(f'#dr-table tr[data-event="{event_id}"] .chip.current.st-acknowledged').wait_for(timeout=30_000)

        # Adjust on the page: a new revision goes out; then cancel: the sites get a retained cancellation.
        row.locator(".kw-input").fill("7")
        row.locator("button", has_text="変更").click()
        _site, adjusted_revision = watcher.wait_for_ack(event_id, first_revision + 1)
        page.locator(f'#dr-table tr[data-event="{event_id}"]').locator("button", has_text="取消").click()
        watcher.wait_for_ack(event_id, adjusted_revision + 1)  # the cancellation reached the site
        page.locator(f'#dr-table tr[data-event="{event_id}"] .chip.current.st-cancelled').wait_for(timeout=30_000)

        # An "X kW more" event from the page: the sites get import floors to absorb, e.g. a PV surplus.
        page.locator("#dr-direction").select_option("increase")
        page.locator("#dr-kw").fill("3")
        page.locator("#dr-create").click()
        wait_for(message.inner_text, lambda text: "dr-" in text, timeout_s=10)
        increase_id = next(word for word in message.inner_text().split() if word.startswith("dr-"))
        page.locator(f'#dr-table tr[data-event="{increase_id}"] .chip.dir-increase').wait_for(timeout=15_000)
        floor_site, _revision = watcher.wait_for_ack(increase_id)
        assert watcher.floors_sent(increase_id, floor_site), "an increase event sends import floors"

        # Both hold the programme's limit: said on the panel and drawn across the day's demand; then the depot
        # is withdrawn from the page, and its limit is cancelled at the site.
        for site_id in ("site-00003", "yamato-takatsu"):
            page.locator(f'#sites-table tr[data-site="{site_id}"]').click()
            wait_for(status.inner_text, lambda text: "今日の上限" in text, timeout_s=90)
            assert page.evaluate(_CHART_POINTS, "#site-chart")[2] >= 1, "the limit in force is drawn"
        page.locator("#pp-toggle").click()
        wait_for(status.inner_text, lambda text: "未登録" in text, timeout_s=10)
        programme_events = wait_for(
            lambda: _programme_events(platform.db_url),
            lambda events: events.get("yamato-takatsu") == "cancelled",
            timeout_s=30,
        )
        assert programme_events["site-00003"] in ("dispatched", "acknowledged", "active"), programme_events

        page.locator("#lang-toggle").click()
        assert page.locator("#sites-title, [data-i18n=sites_title]").first.inner_text() == "Sites"
        page.wait_for_timeout(500)
    assert errors == []
