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
from vpp.postgres.openadr_dr import publish_dr_event

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
            pks: dict[str, int] = dict(conn.execute("SELECT site_id, id FROM sites").fetchall())
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
            openadr = _openadr_limits(conn, event.pk)
    finally:
        dispatcher.stop()
    assert dispatched["normal"]
    assert not dispatched["small"]
    refused = [a for a in trail if a["action"] == "limit_refused"]
    # Refused on both channels, each with its reason: the MQTT signal and the OpenADR 3.1 event.
    assert sorted(a["detail"]["channel"] for a in refused) == ["mqtt", "openadr"]
    assert all(a["detail"]["site_pk"] == pks["small"] for a in refused)
    assert all("above its rated import 60.0 kW" in a["detail"]["reason"] for a in refused)
    assert metrics.implausible_limits._value.get() == 2
    assert openadr == {"normal": [40.0, 40.0]}


def _openadr_limits(conn: psycopg.Connection, event_pk: int) -> dict[str, list[float]]:
    """Per site, the IMPORT_CAPACITY_LIMIT values its OpenADR event carries (what a VEN would read)."""
    rows = conn.execute(
        """SELECT s.site_id, e.body FROM openadr_events e JOIN sites s ON s.id = e.site_pk
           WHERE e.dr_event_pk = %s""",
        (event_pk,),
    ).fetchall()
    return {
        site_id: [
            v
            for i in body["intervals"]
            for p in i["payloads"]
            if p["type"] == "IMPORT_CAPACITY_LIMIT"
            for v in p["values"]
        ]
        for site_id, body in rows
    }


def test_openadr_event_never_carries_a_limit_far_above_the_history_and_keeps_its_last_plausible_one(
    db_url: str,
) -> None:
    register_depot(db_url, "steady")
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now + timedelta(hours=2), now + timedelta(hours=3)
    refusals: list[tuple[str, str]] = []
    with psycopg.connect(db_url) as conn:
        site_pk = conn.execute("SELECT id FROM sites WHERE site_id = 'steady'").fetchone()[0]  # type: ignore[index]
        # A generous rated import, so the history decides: two days of 20 kW demand.
        conn.execute("UPDATE sites SET contract_demand_kw = 10000 WHERE id = %s", (site_pk,))
        conn.execute(
            """INSERT INTO site_energy_30min (site_pk, slot_start, import_kwh, export_kwh, coverage)
               SELECT %s, g, 10.0, 0.0, 1.0 FROM generate_series(%s::timestamptz - interval '2 days',
                                                            %s::timestamptz - interval '30 minutes',
                                                            interval '30 minutes') AS g""",
            (site_pk, now.replace(minute=0, second=0), now.replace(minute=0, second=0)),
        )
        event = store.create_event(
            conn, event_id="ev-history", kind="peak_cut", start_at=start, end_at=end, requested_kw=5.0,
            incentive_jpy_per_kwh=0.0, region_id=None, source="operator", actor="operator:test", now=now,
        )  # fmt: skip
        store.set_event_sites(conn, event.pk, [(site_pk, 5.0, 15.0, None)], allocated_kw=5.0, shortfall_kw=0.0)
        assert publish_dr_event(conn, "ev-history", now, on_refused=lambda s, r: refusals.append((s, r)))
        assert _openadr_limits(conn, event.pk) == {"steady": [15.0, 15.0]}
        # A re-plan from corrupted history: 6,577 kW for a ~20 kW site. The VEN keeps the last plausible limit.
        store.set_event_sites(conn, event.pk, [(site_pk, 5.0, 6577.0, None)], allocated_kw=5.0, shortfall_kw=0.0)
        assert publish_dr_event(conn, "ev-history", now, on_refused=lambda s, r: refusals.append((s, r))) == []
        assert _openadr_limits(conn, event.pk) == {"steady": [15.0, 15.0]}
        trail = store.audit_trail(conn, event.pk)
    assert [site for site, _reason in refusals] == ["steady"]
    assert "far above its history" in refusals[0][1]
    refused = [a["detail"] for a in trail if a["action"] == "limit_refused"]
    assert refused == [{"site_pk": site_pk, "reason": refusals[0][1], "channel": "openadr"}]
