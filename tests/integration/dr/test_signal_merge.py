"""Two overlapping events at one site through the real broker: the retained signal carries both, so a
site that connects afterwards obeys both, and cancelling one leaves the other in force."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import psycopg
import pytest

from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.ingest_fixtures import register_depot
from tests.support.waiting import wait_for
from vpp.domain.dr_events import SignalInterval
from vpp.domain.slots import JST
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress
from vpp.postgres import dr_events as store
from vpp.simulation.ems_link import SiteEmsLink
from vpp.simulation.model import SiteSimulator, SiteSpec

pytestmark = pytest.mark.integration

SITE = "depot-a"


def jst(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), JST)


def called_event(conn: psycopg.Connection, event_id: str, start: datetime, end: datetime, limit_kw: float) -> None:
    """A planned event calling the site with a given limit (allocation and planning are tested elsewhere)."""
    event = store.create_event(
        conn, event_id=event_id, kind="peak_cut", start_at=start, end_at=end, requested_kw=10.0,
        incentive_jpy_per_kwh=0.0, region_id=None, source="operator", actor="operator:test", now=start,
    )  # fmt: skip
    (site_pk,) = conn.execute("SELECT id FROM sites WHERE site_id = %s", (SITE,)).fetchone() or (None,)
    store.set_event_sites(conn, event.pk, [(site_pk, 10.0, limit_kw, None)], allocated_kw=10.0, shortfall_kw=0.0)
    conn.commit()


def apply_queued(ems: SiteEmsLink) -> int:
    """Hand the queued messages to the simulator's EMS: each one is the site's whole DR state."""
    applied = 0
    while not ems.pending.empty():
        ems.sim.apply_signal(ems.pending.get_nowait())
        applied += 1
    return applied


def limits_at(sim: SiteSimulator, moments: list[datetime]) -> list[float | None]:
    out = []
    for moment in moments:
        sim.step(moment)
        out.append(sim.state.import_limit_kw)
    return out


def test_overlapping_events_both_stay_in_force_at_the_site(db_url: str, broker: EmbeddedBroker) -> None:
    register_depot(db_url, SITE)
    now = datetime.now(UTC).replace(microsecond=0)
    day = now.astimezone(JST).date() + timedelta(days=1)
    a_start, a_end, b_start, b_end = jst(day, 14), jst(day, 16), jst(day, 15), jst(day, 17)
    quarter = timedelta(minutes=15)
    metrics = SchedulerMetrics()
    dispatcher = Dispatcher(BrokerAddress("127.0.0.1", broker.port), metrics, client_id="dr-merge-test")
    dispatcher.start()
    ems: SiteEmsLink | None = None
    try:
        assert dispatcher.connected.wait(10)
        with psycopg.connect(db_url) as conn:
            scheduler = Scheduler(conn, dispatcher, metrics)
            called_event(conn, "ev-a", a_start, a_end, 30.0)
            scheduler.dispatch("ev-a", now=now, actor="operator:test")
            called_event(conn, "ev-b", b_start, b_end, 20.0)
            scheduler.dispatch("ev-b", now=now, actor="operator:test")

            # The site's EMS connects only now: all it gets is the retained message, which holds both events.
            sim = SiteSimulator(SiteSpec(site_id=SITE), now, seed=1)
            ems = SiteEmsLink(sim, "127.0.0.1", broker.port)
            wait_for(lambda: len(ems.received), lambda n: n == 1, timeout_s=10)
            (signal,) = ems.received
            assert (signal.event_id, signal.status) == ("ev-b", "active")
            assert [e.event_id for e in signal.events] == ["ev-a", "ev-b"]
            assert signal.intervals == (SignalInterval(a_start, b_start, 30.0), SignalInterval(b_start, b_end, 20.0))
            assert apply_queued(ems) == 1
            assert limits_at(sim, [jst(day, 14) + quarter]) == [30.0]

            scheduler.cancel("ev-a", now=now, actor="operator:test", reason="test")
            wait_for(lambda: len(ems.received), lambda n: n == 2, timeout_s=10)
            cancelled = ems.received[-1]
            assert (cancelled.event_id, cancelled.status) == ("ev-a", "active")  # ev-b is still in force
            assert [e.event_id for e in cancelled.events] == ["ev-b"]
            assert cancelled.intervals == (SignalInterval(b_start, b_end, 20.0),)
            assert apply_queued(ems) == 1
            moments = [
                jst(day, 14) + 3 * quarter,
                jst(day, 15) + quarter,
                jst(day, 16) + quarter,
                jst(day, 17) + quarter,
            ]
            assert limits_at(sim, moments) == [None, 20.0, 20.0, None]

            # Cancelling the last event leaves a retained cancellation: nothing is in force any more.
            scheduler.cancel("ev-b", now=now, actor="operator:test", reason="test")
            wait_for(lambda: len(ems.received), lambda n: n == 3, timeout_s=10)
            assert (ems.received[-1].status, ems.received[-1].intervals) == ("cancelled", ())
            statuses = [store.get_event(conn, e) for e in ("ev-a", "ev-b")]
            assert [s.status for s in statuses if s is not None] == ["cancelled", "cancelled"]
    finally:
        dispatcher.stop()
        if ems is not None:
            ems.close()


def test_a_site_the_reallocation_drops_is_released_and_keeps_its_other_events(
    db_url: str, broker: EmbeddedBroker
) -> None:
    register_depot(db_url, SITE)
    now = datetime.now(UTC).replace(microsecond=0)
    day = now.astimezone(JST).date() + timedelta(days=1)
    metrics = SchedulerMetrics()
    dispatcher = Dispatcher(BrokerAddress("127.0.0.1", broker.port), metrics, client_id="dr-release-test")
    dispatcher.start()
    sim = SiteSimulator(SiteSpec(site_id=SITE), now, seed=1)
    ems = SiteEmsLink(sim, "127.0.0.1", broker.port)
    try:
        assert dispatcher.connected.wait(10)
        assert ems.subscribed.wait(10)
        with psycopg.connect(db_url) as conn:
            scheduler = Scheduler(conn, dispatcher, metrics)
            called_event(conn, "ev-keep", jst(day, 10), jst(day, 11), 25.0)
            scheduler.dispatch("ev-keep", now=now, actor="operator:test")
            called_event(conn, "ev-moved", jst(day, 14), jst(day, 15), 30.0)
            moved = scheduler.dispatch("ev-moved", now=now, actor="operator:test")
            wait_for(lambda: len(ems.received), lambda n: n == 2, timeout_s=10)

            # The re-allocation called other sites only: this one must stop cutting for ev-moved.
            store.set_event_sites(conn, moved.pk, [], allocated_kw=0.0, shortfall_kw=10.0)
            conn.commit()
            (site_pk,) = conn.execute("SELECT id FROM sites WHERE site_id = %s", (SITE,)).fetchone() or (None,)
            scheduler.release(moved, {site_pk: SITE}, now)
            wait_for(lambda: len(ems.received), lambda n: n == 3, timeout_s=10)
            released = ems.received[-1]
            assert (released.event_id, released.status) == ("ev-moved", "active")
            assert [e.event_id for e in released.events] == ["ev-keep"]
            assert released.intervals == (SignalInterval(jst(day, 10), jst(day, 11), 25.0),)
    finally:
        dispatcher.stop()
        ems.close()
