"""ERAB baseline day exclusion: only DR events actually sent to the site count, never its own demand control."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import psycopg
import pytest

from tests.integration.ingest_fixtures import DEPOT_DEVICES
from vpp.domain.slots import JST
from vpp.postgres import dr_events as store
from vpp.postgres.dr_verification import dispatched_dr_days
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

EVENT_DAY = date(2026, 11, 20)


def _event(conn: psycopg.Connection, site_pk: int, event_id: str, day: date, source: str, dispatched: bool) -> int:
    start = datetime.combine(day, time(17), JST)
    event = store.create_event(
        conn, event_id=event_id, kind="peak_cut", start_at=start, end_at=start + timedelta(hours=1),
        requested_kw=5.0, incentive_jpy_per_kwh=0.0, region_id=None, source=source, actor="test", now=start,
    )  # fmt: skip
    store.set_event_sites(conn, event.pk, [(site_pk, 5.0, 10.0, None)], allocated_kw=5.0, shortfall_kw=0.0)
    if dispatched:
        store.record_dispatch(conn, event.pk, [site_pk], 1, start - timedelta(hours=2))
    return event.pk


def test_only_dispatched_dr_events_remove_a_day_from_the_baseline_pool(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        site_pk = register_site(conn, SiteRecord("depot-a", "Depot", demand_target_kw=30.0), DEPOT_DEVICES)
        day = EVENT_DAY - timedelta(days=1)
        _event(conn, site_pk, "operator-sent", day - timedelta(days=1), "operator", dispatched=True)
        _event(conn, site_pk, "operator-never-sent", day - timedelta(days=2), "operator", dispatched=False)
        _event(conn, site_pk, "live-own-control", day - timedelta(days=3), "live_control", dispatched=True)
        _event(conn, site_pk, "openadr-sent", day - timedelta(days=4), "openadr", dispatched=True)
        this = _event(conn, site_pk, "the-event", EVENT_DAY, "operator", dispatched=True)
        conn.commit()

        days = dispatched_dr_days(conn, site_pk, EVENT_DAY, this)
        assert days == {day - timedelta(days=1), day - timedelta(days=4)}
