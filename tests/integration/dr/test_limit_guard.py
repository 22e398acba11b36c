"""The scheduler never publishes a limit the site could not mean: it refuses, alarms and says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.ingest_fixtures import register_depot
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress
from vpp.postgres import dr_events as store

pytestmark = pytest.mark.integration


def test_implausible_limit_is_refused_with_its_reason_and_the_plausible_site_still_dispatched(
    db_url: str, broker: EmbeddedBroker
) -> None:
    for site in ("small", "normal"):
        register_depot(db_url, site)
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    metrics = SchedulerMetrics()
    dispatcher = Dispatcher(BrokerAddress("127.0.0.1", broker.port), metrics, client_id="dr-guard-test")
    dispatcher.start()
    try:
        assert dispatcher.connected.wait(10)
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE sites SET contract_demand_kw = 60")
            pks = dict(conn.execute("SELECT site_id, id FROM sites").fetchall())
            event = store.create_event(
                conn, event_id="ev-guard", kind="peak_cut", start_at=start, end_at=end, requested_kw=10.0,
                incentive_jpy_per_kwh=0.0, region_id=None, source="operator", actor="operator:test", now=now,
            )  # fmt: skip
            store.set_event_sites(
                conn, event.pk, [(pks["small"], 5.0, 6577.0, None), (pks["normal"], 5.0, 40.0, None)],
                allocated_kw=10.0, shortfall_kw=0.0,
            )  # fmt: skip
            conn.commit()
            Scheduler(conn, dispatcher, metrics).dispatch("ev-guard", now=now, actor="operator:test")
            dispatched = {s.site_id: s.dispatched_revision for s in store.event_sites(conn, event.pk)}
            trail = store.audit_trail(conn, event.pk)
    finally:
        dispatcher.stop()
    assert dispatched["normal"]
    assert not dispatched["small"]
    refused = [a for a in trail if a["action"] == "limit_refused"]
    assert len(refused) == 1
    assert "above its rated import 60.0 kW" in refused[0]["detail"]["reason"]
    assert metrics.implausible_limits._value.get() == 1
