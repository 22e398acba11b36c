"""End to end: the peak programme's limits over MQTT to the simulated site's EMS, slot by slot through an
afternoon and evening; the site acknowledges each revision, and its telemetry, through the real ingest
worker, stays within every limit it was sent."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
import pytest

from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.peak_programme import PeakProgramme, event_id_for
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.dr.depot_history import EVENT_DAY, SITE, STEP_S, jst, rolled_up_to, slot_imports_kwh
from tests.integration.ingest_fixtures import register_depot, running_ingest
from tests.support.waiting import wait_for
from vpp.domain.slots import SLOT
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress
from vpp.postgres import dr_events as store
from vpp.postgres.peak_programme import set_enrolled
from vpp.simulation.ems_link import SiteEmsLink
from vpp.simulation.model import SiteSimulator, SiteSpec
from vpp.simulation.publisher import SimulationPublisher

pytestmark = pytest.mark.integration

SLOTS = 12  # 14:00–20:00 JST: the afternoon's PV and the evening peak


def _net_load_kw(db_url: str, start: datetime, end: datetime) -> list[float]:
    """Each slot's load − PV, kW: what the site would import without its battery."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """SELECT 2 * (e.load_kwh - e.pv_kwh) FROM site_energy_30min e JOIN sites s ON s.id = e.site_pk
               WHERE s.site_id = %s AND e.slot_start >= %s AND e.slot_start < %s ORDER BY e.slot_start""",
            (SITE, start, end),
        ).fetchall()
    return [float(row[0]) for row in rows]


def test_the_simulated_site_holds_each_slots_limit_sent_over_mqtt(db_url: str, broker: EmbeddedBroker) -> None:
    register_depot(db_url, SITE)
    with psycopg.connect(db_url) as conn:
        set_enrolled(conn, SITE, True)
        conn.commit()
    address = BrokerAddress("127.0.0.1", broker.port)
    history_start = jst(EVENT_DAY - timedelta(days=8), 23) - timedelta(days=1)
    first = jst(EVENT_DAY, 14)
    # The depot without its vans: a battery-only site, as the programme requires.
    sim = SiteSimulator(SiteSpec(site_id=SITE, ev_count=0), history_start, seed=3)
    metrics = SchedulerMetrics()
    dispatcher = Dispatcher(address, metrics, client_id="dr-test")
    with running_ingest(db_url, broker.port), psycopg.connect(db_url) as conn:
        publisher = SimulationPublisher([sim], address, client_id="sim-depot-a")
        ems = SiteEmsLink(sim, "127.0.0.1", broker.port)
        dispatcher.start()
        try:
            assert dispatcher.connected.wait(10)
            assert ems.subscribed.wait(10)
            publisher.backfill(history_start, first, STEP_S, per_message=48)
            assert publisher.wait_acked(30)
            scheduler = Scheduler(conn, dispatcher, metrics)
            programme = PeakProgramme(scheduler, background=False)
            limits_kw: list[float] = []
            revisions = 0
            for k in range(SLOTS):
                slot = first + k * SLOT
                settled = slot - SLOT
                wait_for(lambda: rolled_up_to(db_url, settled), bool, timeout_s=30)  # noqa: B023 (used at once)
                now = slot + timedelta(seconds=90)
                scheduler.tick(now)
                if programme.run(now) == [SITE]:
                    ack = dispatcher.acks.get(timeout=10)
                    scheduler.handle_ack(ack.site_id, ack.payload, now=now)
                    wait_for(lambda: ems.pending.qsize(), bool, timeout_s=10)
                    assert ems.apply_pending() >= 1
                    revisions += 1
                event = store.get_event(conn, event_id_for(SITE, EVENT_DAY))
                assert event is not None
                (row,) = store.event_sites(conn, event.pk)
                assert row.import_limit_kw is not None
                assert row.acked_revision == event.revision
                limits_kw.append(row.import_limit_kw)
                publisher.backfill(slot + timedelta(seconds=STEP_S), slot + SLOT, STEP_S, per_message=48)
                assert publisher.wait_acked(30)
            wait_for(lambda: rolled_up_to(db_url, first + (SLOTS - 1) * SLOT), bool, timeout_s=30)

            imports_kwh = slot_imports_kwh(db_url, first, first + SLOTS * SLOT)
            assert len(imports_kwh) == SLOTS
            # Each slot's 30-minute demand within the limit it was sent (the EMS keeps a small margin).
            for demand_kw, limit_kw in zip((2 * kwh for kwh in imports_kwh), limits_kw, strict=True):
                assert demand_kw <= limit_kw + 0.5, (imports_kwh, limits_kw)
            # The floor: where the site's own net load sat well under the limit, the EMS charged its battery
            # from the grid up to it, as the programme counts on (here the afternoon's PV slots).
            net_kw = _net_load_kw(db_url, first, first + SLOTS * SLOT)
            held = [2 * kwh >= limit_kw - 1.0 for kwh, limit_kw in zip(imports_kwh, limits_kw, strict=True)]
            under = [net < limit_kw - 2.0 for net, limit_kw in zip(net_kw, limits_kw, strict=True)]
            assert any(h and u for h, u in zip(held, under, strict=True)), (imports_kwh, limits_kw, net_kw)
            assert revisions >= 1
            event = store.get_event(conn, event_id_for(SITE, EVENT_DAY))
            assert event is not None
            assert event.status == "active"
        finally:
            dispatcher.stop()
            ems.close()
            publisher.close()
