"""Rolling re-planning from live telemetry: a site that falls behind is asked less, the others more, and the
event goes out again as a new revision."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import psycopg
import pytest

from services.dr_scheduler.intraday import IntradayReplanner
from services.dr_scheduler.scheduler import EventRequest, Scheduler
from tests.integration.dr.test_dr_api import RecordingSink
from tests.integration.ingest_fixtures import DEPOT_DEVICES
from vpp.domain.slots import JST
from vpp.postgres import dr_events as store
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

EVENT_DAY = date(2026, 11, 20)  # a Friday
HOURS = np.arange(48) / 2
# A flat 12 kW with an evening rise to 24 kW at 17:00–20:00, no PV: the battery is the only flexibility.
LOAD_KWH = (12.0 + 12.0 * ((HOURS >= 17) & (HOURS < 20))) * 0.5


def _site(conn: psycopg.Connection, site_id: str) -> int:
    record = SiteRecord(site_id, site_id, 35.57, 139.6, pv_kw=0.0, battery_kwh=60.0, battery_kw=15.0)
    site_pk = register_site(conn, record, DEPOT_DEVICES)
    for back in range(1, 9):
        midnight = datetime.combine(EVENT_DAY - timedelta(days=back), time(0), JST)
        _slots(conn, site_pk, midnight, 48)
    return site_pk


def _slots(conn: psycopg.Connection, site_pk: int, midnight: datetime, count: int) -> None:
    for slot in range(count):
        conn.execute(
            """INSERT INTO site_energy_30min (site_pk, slot_start, import_kwh, load_kwh, pv_kwh, ev_kwh, coverage)
               VALUES (%s, %s, %s, %s, 0, 0, 1)""",
            (site_pk, midnight + timedelta(minutes=30 * slot), LOAD_KWH[slot], LOAD_KWH[slot]),
        )


@pytest.mark.parametrize(("late_h", "status"), [(16.5, "dispatched"), (17.5, "active")])
def test_a_site_whose_battery_ran_low_is_asked_less_and_the_event_is_dispatched_again(
    db_url: str, late_h: float, status: str
) -> None:
    midnight = datetime.combine(EVENT_DAY, time(0), JST)
    morning, late = midnight + timedelta(hours=8), midnight + timedelta(hours=late_h)
    sink = RecordingSink()
    with psycopg.connect(db_url) as conn:
        low_pk, _other_pk = _site(conn, "site-low"), _site(conn, "site-ok")
        conn.commit()
        scheduler = Scheduler(conn, sink)
        event = scheduler.create_event(
            EventRequest(midnight + timedelta(hours=17), midnight + timedelta(hours=20), requested_kw=14.0,
                         site_ids=("site-low", "site-ok")),
            now=morning, actor="operator:test",
        )  # fmt: skip
        before = {s.site_id: s for s in store.event_sites(conn, event.pk)}
        assert before["site-low"].allocated_kw == pytest.approx(7.0, abs=0.01)  # the same site twice: halves
        scheduler.dispatch(event.event_id, now=morning, actor="operator:test")
        published = len(sink.sent)

        # The day is metered as forecast, but site-low's battery now reports 12%: far less to give tonight.
        for site_pk in (low_pk, _other_pk):
            _slots(conn, site_pk, midnight, int(late_h * 2))
        conn.execute(
            "INSERT INTO readings (device_pk, ts, soc_pct) SELECT id, %s, 12 FROM devices"
            " WHERE site_pk = %s AND kind = 'battery'",
            (late - timedelta(minutes=1), low_pk),
        )
        conn.commit()
        # Past the start (17:00) the event is active, and a re-plan must not take it back to "dispatched".
        scheduler.tick(min(late, midnight + timedelta(hours=17)))

        replanner = IntradayReplanner(scheduler)
        assert replanner.run(late) == [event.event_id]
        assert replanner.run(late + timedelta(minutes=5)) == []  # once per slot
        after = {s.site_id: s for s in store.event_sites(conn, event.pk)}
        assert after["site-low"].allocated_kw < before["site-low"].allocated_kw - 1.0
        assert after["site-ok"].allocated_kw > before["site-ok"].allocated_kw + 1.0
        assert after["site-low"].allocated_kw <= (after["site-low"].deliverable_kw or 0.0) + 1e-6
        # Same baselines: each limit moved by exactly its share's change.
        for site_id in after:
            moved = after[site_id].allocated_kw - before[site_id].allocated_kw
            limit_before_kw = before[site_id].import_limit_kw
            assert limit_before_kw is not None
            assert after[site_id].import_limit_kw == pytest.approx(limit_before_kw - moved, abs=1e-6)
        revised = store.get_event(conn, event.event_id)
        assert revised is not None
        assert (revised.status, revised.revision) == (status, event.revision + 1)
        assert len(sink.sent) > published  # the new limits went out
