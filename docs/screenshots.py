"""Take the dashboard screenshots in docs/: `.venv/bin/python docs/screenshots.py`.

Starts the platform with `vpp up` on its embedded defaults in a scratch folder (as the end-to-end test does), logs in on
the page, enrols the depot in the day's peak programme and creates a DR event so the panel and the timeline
show them, and saves the page at 1280×800, at tablet
width and as one full-length page. Needs Debian's `chromium` and, for the Japanese labels to render, `fonts-noto-cjk`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.browser import chromium, log_in  # noqa: E402 - after the path set-up above
from tests.e2e.platform import DEV_OPERATOR, running_platform  # noqa: E402
from vpp.log import configure_logging  # noqa: E402

FULL_PAGE = "dashboard-1280-full.png"  # every section, DR timeline included
SHOTS = {"dashboard-1280x800.png": (1280, 800), "dashboard-tablet.png": (820, 1180)}


def main() -> None:
    configure_logging("WARNING", "console")
    with (
        tempfile.TemporaryDirectory(prefix="vpp-shots-") as tmp,
        running_platform(Path(tmp)) as platform,
        chromium() as browser,
    ):
        page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="ja-JP", timezone_id="Asia/Tokyo")
        log_in(page, platform.base_url, *DEV_OPERATOR)
        # The depot in the day's peak programme, enrolled from its panel, so the panel and the chart show it.
        page.locator('#sites-table tr[data-site="yamato-takatsu"]').click()
        page.locator("#pp-toggle").click()
        page.locator("#peak-programme .pp-holding").wait_for(timeout=120_000)
        page.locator("#dr-kw").fill("8")
        page.locator("#dr-create").click()
        page.locator("#dr-table .chip.current.st-acknowledged").first.wait_for(timeout=30_000)
        for name, (width, height) in SHOTS.items():
            page.set_viewport_size({"width": width, "height": height})
            page.evaluate("window.scrollTo(0, 0)")
            page.wait_for_timeout(6_000)  # a poll or so, and the charts' resize
            page.screenshot(path=str(ROOT / "docs" / name))
            print(f"wrote docs/{name}")
        page.set_viewport_size({"width": 1280, "height": 800})
        page.wait_for_timeout(6_000)
        page.screenshot(path=str(ROOT / "docs" / FULL_PAGE), full_page=True)
        print(f"wrote docs/{FULL_PAGE}")


if __name__ == "__main__":
    main()
