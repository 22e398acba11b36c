"""Two DR events in force at one site in the same slots: the site's one reduction is verified, settled and
counted as saved electricity once, split between the events by what each asked of the site."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time, timedelta

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.verification import VerificationConfig, verify_event
from tests.integration.ingest_fixtures import DEPOT_DEVICES
from vpp.domain.dr_events import EventStatus
from vpp.domain.slots import JST, SLOT
from vpp.postgres import dr_events as store
from vpp.postgres.dr_requests import verified_savings_kwh
from vpp.postgres.dr_verification import settlement_lines
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

EVENT_DAY = date(2026, 11, 19)  # a Thursday
BASE_KWH, ACTUAL_KWH = 10.0, 6.0  # every slot of every earlier day; the event day's slots 17:00-18:00


def _history(conn: psycopg.Connection, site_pk: int) -> None:
    start = datetime.combine(EVENT_DAY - timedelta(days=30), time(0), JST)
    rows = []
    for n in range(31 * 48):
        slot = start + n * SLOT
        cut = slot.date() == EVENT_DAY and time(17) <= slot.astimezone(JST).time() < time(18)
        rows.append((site_pk, slot, ACTUAL_KWH if cut else BASE_KWH))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO site_energy_30min (site_pk, slot_start, import_kwh, coverage) VALUES (%s, %s, %s, 1)", rows
        )


def _event(
    conn: psycopg.Connection, site_pk: int, event_id: str, start: datetime, end: datetime, kw: float, source: str
) -> int:
    event = store.create_event(
        conn, event_id=event_id, kind="peak_cut", start_at=start, end_at=end, requested_kw=kw,
        incentive_jpy_per_kwh=10.0, region_id=None, source=source, actor="test", now=start - timedelta(hours=3),
    )  # fmt: skip
    store.set_event_sites(conn, event.pk, [(site_pk, kw, 20.0 - kw, None)], allocated_kw=kw, shortfall_kw=0.0)
    store.record_dispatch(conn, event.pk, [site_pk], 1, start - timedelta(hours=2))
    for status in (EventStatus.DISPATCHED, EventStatus.ACTIVE, EventStatus.COMPLETED):
        store.transition(conn, event_id, status, actor="test", now=start)
    return event.pk


def _savings(db_url: str, start: datetime, end: datetime) -> float:
    async def run() -> float:
        engine = create_async_engine(db_url.replace("postgresql://", "postgresql+asyncpg://", 1))
        try:
            async with engine.connect() as conn:
                return await verified_savings_kwh(conn, start, end)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_overlapping_events_share_the_sites_one_reduction(db_url: str) -> None:
    at_17 = datetime.combine(EVENT_DAY, time(17), JST)
    with psycopg.connect(db_url) as conn:
        site_pk = register_site(conn, SiteRecord("depot-a", "Depot", demand_target_kw=30.0), DEPOT_DEVICES)
        _history(conn, site_pk)
        # A regional event 17:00-18:00 and a top-up for the same site 17:00-17:30, both sent; and the site's
        # own demand control (the day's peak programme) covering the whole evening.
        _event(conn, site_pk, "regional", at_17, at_17 + 2 * SLOT, 6.0, "operator")
        _event(conn, site_pk, "top-up", at_17, at_17 + SLOT, 2.0, "operator")
        _event(conn, site_pk, "peak-depot-a", at_17 - 2 * SLOT, at_17 + 4 * SLOT, 1.0, "peak_programme")
        conn.commit()
        for event_id in ("regional", "top-up", "peak-depot-a"):
            assert (
                verify_event(conn, event_id, at_17 + timedelta(days=1), VerificationConfig(), SchedulerMetrics()) == 1
            )

        lines = {line.event_id: line for line in settlement_lines(conn)}
    # The site cut 4 kWh in each of the two slots: 8 kWh in all, paid once.
    per_slot = BASE_KWH - ACTUAL_KWH
    assert lines["regional"].delivered_kwh == pytest.approx(per_slot * 6 / 8 + per_slot)
    assert lines["top-up"].delivered_kwh == pytest.approx(per_slot * 2 / 8)
    assert lines["peak-depot-a"].delivered_kwh == pytest.approx(0.0)  # the DR events' slots are theirs
    assert sum(line.delivered_kwh for line in lines.values()) == pytest.approx(2 * per_slot)
    assert _savings(db_url, at_17 - timedelta(hours=2), at_17 + timedelta(hours=3)) == pytest.approx(2 * per_slot)
