"""An event that cannot be verified yet (no metered slot, or no baseline) is retried for a week, but not on
every 5-second tick: each attempt reads 30 days of every called site's history and logs a warning per site,
which for one such event was some 480,000 log lines and as many history reads a week per site."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.dr_scheduler.scheduler import VERIFY_RETRY_EVERY, Scheduler
from tests.integration.dr.test_dr_api import RecordingSink
from tests.integration.ingest_fixtures import register_depot
from vpp.domain.dr_events import EventStatus
from vpp.domain.slots import JST
from vpp.postgres import dr_events as store

pytestmark = pytest.mark.integration


def test_an_unverifiable_event_is_retried_at_intervals_not_every_tick(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    register_depot(db_url, "depot-a")
    start = datetime(2026, 11, 19, 17, tzinfo=JST)
    end = start + timedelta(hours=1)
    with psycopg.connect(db_url) as conn:
        site_pk = int(conn.execute("SELECT id FROM sites WHERE site_id = 'depot-a'").fetchone()[0])  # type: ignore[index]
        event = store.create_event(
            conn, event_id="no-history", kind="peak_cut", start_at=start, end_at=end, requested_kw=5.0,
            incentive_jpy_per_kwh=10.0, region_id=None, source="operator", actor="test", now=start - timedelta(hours=3),
        )  # fmt: skip
        store.set_event_sites(conn, event.pk, [(site_pk, 5.0, 10.0, None)], allocated_kw=5.0, shortfall_kw=0.0)
        store.record_dispatch(conn, event.pk, [site_pk], 1, start - timedelta(hours=2))
        for status in (EventStatus.DISPATCHED, EventStatus.ACTIVE, EventStatus.COMPLETED):
            store.transition(conn, "no-history", status, actor="test", now=start)
        conn.commit()

        scheduler = Scheduler(conn, RecordingSink())
        first = end.astimezone(UTC) + timedelta(minutes=10)
        caplog.set_level(logging.WARNING, logger="vpp.dr_scheduler.verification")
        for tick in range(60):  # five minutes of 5-second ticks
            scheduler.verify_pending(first + tick * timedelta(seconds=5))
        attempts = [r for r in caplog.records if r.getMessage() == "site not verified"]
        assert len(attempts) == 1
        scheduler.verify_pending(first + VERIFY_RETRY_EVERY)
        attempts = [r for r in caplog.records if r.getMessage() == "site not verified"]
        assert len(attempts) == 2  # still retried, for late data
