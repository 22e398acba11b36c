"""End to end, "X kW more": history → forecast, allocate and plan import floors → signal over MQTT → the
depot's EMS charges its battery to hold import up → telemetry through the real ingest worker → the standard
baseline verifies the *increase* (actual − baseline), settled like a reduction."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from services.dr_scheduler.scheduler import EventRequest, Scheduler
from tests.integration.dr.depot_history import (
    EVENT_DAY,
    SITE,
    STEP_S,
    depot_loop,
    jst,
    send_history,
    slot_imports_kwh,
)
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres import dr_events as store
from vpp.postgres.dr_verification import settlement_lines, verified_reductions

pytestmark = pytest.mark.integration


def test_increase_event_raises_import_and_verifies_the_increase(db_url: str, broker: EmbeddedBroker) -> None:
    morning, event_start, event_end = jst(EVENT_DAY, 6), jst(EVENT_DAY, 10), jst(EVENT_DAY, 12)
    evening = jst(EVENT_DAY, 19)
    with (
        depot_loop(db_url, broker.port, morning, client_id="dr-increase-test") as loop,
        psycopg.connect(db_url) as conn,
    ):
        sim, dispatcher, ems, publisher, metrics = loop.sim, loop.dispatcher, loop.ems, loop.publisher, loop.metrics
        scheduler = Scheduler(conn, dispatcher, metrics)
        event = scheduler.create_event(
            EventRequest(event_start, event_end, requested_kw=4.0, incentive_jpy_per_kwh=20.0,
                         site_ids=(SITE,), direction="increase"),
            now=morning, actor="operator:test",
        )  # fmt: skip
        assert (event.status, event.direction) == ("planned", "increase")
        assert event.allocated_kw > 0
        (site,) = store.event_sites(conn, event.pk)
        assert site.import_limit_kw is None
        assert site.import_floor_kw is not None
        assert len(site.import_floor_kw) == 4
        assert min(site.import_floor_kw) >= site.allocated_kw - 1e-9  # forecast import + share, slot by slot
        assert site.plan is not None
        assert site.plan["note"] == "planned"

        scheduler.dispatch(event.event_id, now=morning, actor="operator:test")
        ack = dispatcher.acks.get(timeout=10)
        scheduler.handle_ack(ack.site_id, ack.payload, now=morning)
        assert store.get_event(conn, event.event_id).status == "acknowledged"  # type: ignore[union-attr]
        wait_for(lambda: ems.pending.qsize(), lambda n: n == 1, timeout_s=10)
        signal = ems.pending.get_nowait()
        assert [i.import_floor_kw for i in signal.intervals] == pytest.approx(
            site.import_floor_kw, abs=5e-4
        )  # to the watt
        sim.apply_signal(signal)  # the whole DR state of the site (the v1 contract)

        send_history(publisher, db_url, morning + timedelta(seconds=STEP_S), evening)

        # The telemetry shows the increase: each event slot's demand (kWh × 2) at or above its floor.
        event_kwh = slot_imports_kwh(db_url, event_start, event_end)
        assert len(event_kwh) == 4
        for kwh, floor_kw in zip(event_kwh, site.import_floor_kw, strict=True):
            assert kwh * 2 >= floor_kw - 0.5

        scheduler.tick(evening)
        assert store.get_event(conn, event.event_id).status == "completed"  # type: ignore[union-attr]
        rows = verified_reductions(conn, event.pk)[SITE]
        assert len(rows) == 4
        for row in rows:  # stored as the delivery in the asked direction: actual − baseline
            assert row.actual_kwh is not None
            assert row.reduction_kwh is not None
            assert row.reduction_kwh == pytest.approx(row.actual_kwh - row.baseline_kwh)
        (line,) = settlement_lines(conn, event_id=event.event_id)
        assert line.delivered_kwh > 0
        assert line.amount_jpy == pytest.approx(line.settled_kwh * 20.0)
