"""Live demand control against a real database: a slot heading over the site's target raises an alarm
once and dispatches an immediate one-slot peak-cut at the target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.dr_scheduler.live_control import check_live_demand
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.dr.test_dr_api import RecordingSink
from tests.integration.ingest_fixtures import DEPOT_DEVICES
from vpp.domain.dr_events import parse_signal
from vpp.domain.slots import slot_start
from vpp.postgres import dr_events as store
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

TARGET_KW = 30.0


def _meter(
    conn: psycopg.Connection, site_pk: int, slot: datetime, energy_kwh: float, at: datetime, power_kw: float
) -> None:
    conn.execute(
        "INSERT INTO site_energy_30min (site_pk, slot_start, import_kwh, coverage) VALUES (%s, %s, %s, 1)"
        " ON CONFLICT (site_pk, slot_start) DO UPDATE SET import_kwh = EXCLUDED.import_kwh",
        (site_pk, slot, energy_kwh),
    )
    conn.execute(
        "INSERT INTO readings (device_pk, ts, power_kw) SELECT id, %s, %s FROM devices"
        " WHERE site_pk = %s AND kind = 'meter'",
        (at, power_kw, site_pk),
    )


def test_predicted_overshoot_raises_one_alarm_and_an_immediate_cut(db_url: str) -> None:
    slot = slot_start(datetime.now(UTC)) - timedelta(minutes=30)  # a whole slot in the recent past
    now = slot + timedelta(minutes=20)
    sink = RecordingSink()
    metrics = SchedulerMetrics()
    with psycopg.connect(db_url) as conn:
        site_pk = register_site(conn, SiteRecord("depot-a", "Depot", demand_target_kw=TARGET_KW), DEPOT_DEVICES)
        # 9 kWh in 20 min, 36 kW now: (9 + 36 × 10/60) × 2 = 30 kW → exactly the target: a warning, no cut.
        _meter(conn, site_pk, slot, 9.0, now - timedelta(seconds=5), 36.0)
        conn.commit()
        scheduler = Scheduler(conn, sink, metrics)
        (warned,) = check_live_demand(scheduler, now, metrics)
        assert (warned.level, warned.event_id, sink.sent) == ("warn", None, [])

        # 10 kWh and 40 kW a minute later: (10 + 40 × 9/60) × 2 = 32 kW > 30 kW.
        later = now + timedelta(minutes=1)
        _meter(conn, site_pk, slot, 10.0, later - timedelta(seconds=5), 40.0)
        conn.commit()
        (alarm,) = check_live_demand(scheduler, later, metrics)
        assert alarm.level == "over"
        assert alarm.predicted_kw == pytest.approx(32.0)
        assert check_live_demand(scheduler, later + timedelta(seconds=10), metrics) == []  # once per slot

        event = store.get_event(conn, alarm.event_id or "")
        assert event is not None
        assert (event.status, event.source, event.start_at, event.end_at) == (
            "dispatched", "live_control", slot, slot + timedelta(minutes=30),
        )  # fmt: skip
        alarms = conn.execute("SELECT level, predicted_kw FROM site_alarms WHERE site_pk = %s", (site_pk,)).fetchall()
        assert alarms == [("over", pytest.approx(32.0))]
    (signal,) = [parse_signal(payload) for _site, payload, _status in sink.sent]
    assert signal.intervals[0].import_limit_kw == TARGET_KW
