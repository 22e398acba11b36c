"""End to end: history → forecast and plan → peak-cut signal over MQTT → the depot's EMS obeys and acks
→ telemetry through the real ingest worker shows the cut → the standard baseline verifies the reduction."""

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
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres import dr_events as store
from vpp.postgres.dr_verification import settlement_lines, verified_reductions

pytestmark = pytest.mark.integration


def test_peak_cut_signal_is_obeyed_and_verified(db_url: str, broker: EmbeddedBroker) -> None:
    morning, event_start, event_end = jst(EVENT_DAY, 9), jst(EVENT_DAY, 14), jst(EVENT_DAY, 16)
    evening = jst(EVENT_DAY, 19)
    with depot_loop(db_url, broker.port, morning, client_id="dr-test") as loop, psycopg.connect(db_url) as conn:
        dispatcher, ems, publisher, metrics = loop.dispatcher, loop.ems, loop.publisher, loop.metrics
        scheduler = Scheduler(conn, dispatcher, metrics)
        event = scheduler.create_event(
            EventRequest(event_start, event_end, requested_kw=8.0, incentive_jpy_per_kwh=30.0, site_ids=(SITE,)),
            now=morning,
            actor="operator:test",
        )
        assert event.status == "planned"
        assert event.allocated_kw == pytest.approx(8.0)
        (site,) = store.event_sites(conn, event.pk)
        assert site.import_limit_kw is not None
        limit_kw = site.import_limit_kw

        scheduler.dispatch(event.event_id, now=morning, actor="operator:test")
        ack = dispatcher.acks.get(timeout=10)
        scheduler.handle_ack(ack.site_id, ack.payload, now=morning)
        assert store.get_event(conn, event.event_id).status == "acknowledged"  # type: ignore[union-attr]
        assert ems.apply_pending() == 1

        send_history(publisher, db_url, morning + timedelta(seconds=STEP_S), evening)

        # The telemetry shows the cut: every event slot's demand (kWh × 2) within the signalled limit.
        event_kwh = slot_imports_kwh(db_url, event_start, event_end)
        assert len(event_kwh) == 4
        assert max(event_kwh) * 2 <= limit_kw + 0.5

        # Right after the end, the last slot's readings may still be on their way: not verified yet.
        scheduler.tick(event_end + timedelta(minutes=1))
        assert store.get_event(conn, event.event_id).status == "completed"  # type: ignore[union-attr]
        assert verified_reductions(conn, event.pk) == {}

        scheduler.tick(evening)
        done = store.get_event(conn, event.event_id)
        assert done is not None
        assert done.status == "completed"
        trail = store.audit_trail(conn, event.pk)
        actions = [row["to_status"] for row in trail if row["to_status"] is not None]
        assert actions == ["planned", "dispatched", "acknowledged", "active", "completed"]
        (allocation,) = [row["detail"] for row in trail if row["action"] == "allocation"]
        assert allocation["allocated_kw"] == pytest.approx(8.0)
        assert allocation["deliverable_kw"] >= 8.0  # eight days of history: a real reduction to share

        reductions = verified_reductions(conn, event.pk)[SITE]
        assert len(reductions) == 4
        assert all(r.actual_kwh is not None for r in reductions)
        (line,) = settlement_lines(conn, event_id=event.event_id)
        assert line.delivered_kwh > 0
        assert line.amount_jpy == pytest.approx(line.settled_kwh * 30.0)
