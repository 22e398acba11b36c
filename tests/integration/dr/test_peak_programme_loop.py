"""End to end: the peak programme's limits over MQTT to the simulated site's EMS, slot by slot through an
afternoon and evening; the site acknowledges each revision, and its telemetry, through the real ingest
worker, stays within every limit it was sent."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from services.dr_scheduler.peak_programme import PeakProgramme, event_id_for
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.dr.depot_history import (
    EVENT_DAY,
    SITE,
    STEP_S,
    depot_loop,
    jst,
    rolled_up_to,
    slot_imports_kwh,
    slot_values,
)
from tests.support.waiting import wait_for
from vpp.domain.slots import SLOT
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres import dr_events as store
from vpp.postgres.peak_programme import set_enrolled
from vpp.simulation.model import SiteSpec

pytestmark = pytest.mark.integration

SLOTS = 12  # 14:00–20:00 JST: the afternoon's PV and the evening peak


@pytest.mark.parametrize("vans", [False, True], ids=["battery-only", "with-vans"])
def test_the_simulated_site_holds_each_slots_limit_sent_over_mqtt(
    db_url: str, broker: EmbeddedBroker, vans: bool
) -> None:
    first = jst(EVENT_DAY, 14)
    # The depot without its vans (the stochastic programme), and as it is, with 25 vans (the LP re-plan).
    spec = SiteSpec(site_id=SITE) if vans else SiteSpec(site_id=SITE, ev_count=0)
    with (
        depot_loop(db_url, broker.port, first, client_id="dr-test", spec=spec) as loop,
        psycopg.connect(db_url) as conn,
    ):
        dispatcher, ems, publisher = loop.dispatcher, loop.ems, loop.publisher
        set_enrolled(conn, SITE, True)
        conn.commit()
        scheduler = Scheduler(conn, dispatcher, loop.metrics)
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
        if not vans:
            # The floor: where the site's own net load sat well under the limit, the EMS charged its battery
            # from the grid up to it, as the programme counts on (here the afternoon's PV slots).
            net_kw = slot_values(db_url, first, first + SLOTS * SLOT, "2 * (e.load_kwh - e.pv_kwh)")
            held = [2 * kwh >= limit_kw - 1.0 for kwh, limit_kw in zip(imports_kwh, limits_kw, strict=True)]
            under = [net < limit_kw - 2.0 for net, limit_kw in zip(net_kw, limits_kw, strict=True)]
            assert any(h and u for h, u in zip(held, under, strict=True)), (imports_kwh, limits_kw, net_kw)
        assert revisions >= 1
        event = store.get_event(conn, event_id_for(SITE, EVENT_DAY))
        assert event is not None
        assert event.status == "active"
        (row,) = store.event_sites(conn, event.pk)
        assert row.plan is not None
        assert row.plan["controller"] == ("lp_replan" if vans else "stochastic")
