"""The simulated depot switched to an OpenADR 2.0b VEN completes the DR loop it completes over MQTT.

The same depot (same site id, same simulator seed, same history) runs the loop twice, each on a fresh
database: once as in tests/integration/dr/test_dr_loop.py (MQTT signal, MQTT ack, MQTT telemetry), once
as a 2.0b VEN (openleadr's client over TLS with its client certificate: it polls the scheduler's event,
opts in, curtails, and reports its usage per slot with oadrUpdateReport; no telemetry after the switch).
Both are verified by the scheduler from the same baseline; the delivered reduction must be the same.

openleadr's VEN decides on the wall clock whether an event is over (it answers no event that ended),
so the event day is a coming working day and the simulation runs ahead of the wall clock: ingest is
told to accept readings up to that day, and the VTN is given the simulation's clock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.scheduler import EventRequest, Scheduler
from services.oadr2b.settings import Oadr2bSettings
from services.oadr2b.thread import VtnThread
from tests.integration.dr.depot_history import SITE, STEP_S, depot_loop, jst, send_history, slot_imports_kwh
from tests.integration.ingest_fixtures import register_depot, running_ingest
from tests.integration.oadr2b.pki import KeyPair, issue, make_ca
from tests.support.servers import Server, fresh_database
from tests.support.waiting import wait_for
from vpp.domain.baseline import japanese_holiday_checker
from vpp.domain.slots import JST
from vpp.domain.telemetry import Limits
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import free_port
from vpp.mqtt import BrokerAddress
from vpp.postgres import dr_events as store
from vpp.postgres.dr_verification import settlement_lines, verified_reductions
from vpp.postgres.oadr2b import add_ven, event_opt_states
from vpp.postgres.openadr_dr import reported_usage_kwh
from vpp.simulation.model import SiteSimulator, SiteSpec
from vpp.simulation.oadr2b_ven import SiteOadr2bVen
from vpp.simulation.publisher import SimulationPublisher

pytestmark = pytest.mark.integration

HISTORY_DAYS = 15  # ten working days and more before any event day: the baseline's High 4 of 5 has its pick


def _event_day() -> date:
    """The next working day after today (JST): its 14:00 event is hours away on the wall clock."""
    is_holiday = japanese_holiday_checker()
    day = datetime.now(JST).date() + timedelta(days=1)
    while day.weekday() >= 5 or is_holiday(day):
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class Loop:
    limit_kw: float
    event_kwh: list[float]  # what verification counted as actual import, per event slot
    reductions_kwh: list[float]
    delivered_kwh: float
    statuses: list[str]


@dataclass(frozen=True)
class Times:
    history_start: datetime
    morning: datetime
    event_start: datetime
    event_end: datetime
    evening: datetime


def _times() -> Times:
    day = _event_day()
    return Times(jst(day, 0) - timedelta(days=HISTORY_DAYS), jst(day, 9), jst(day, 14), jst(day, 16), jst(day, 19))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KeyPair]:
    base = tmp_path_factory.mktemp("pki-depot")
    ca = make_ca(base)
    return {"ca": ca, "vtn": issue(ca, base, "vtn", server=True), "depot": issue(ca, base, "depot-ven")}


@pytest.fixture
def two_databases(pg_server: Server) -> Iterator[tuple[str, str]]:
    with fresh_database(pg_server) as mqtt_db, fresh_database(pg_server) as oadr2b_db:
        yield mqtt_db, oadr2b_db


def _limits_ahead(t: Times) -> Limits:
    # The simulation runs ahead of the wall clock (see the module docstring).
    ahead = t.evening - datetime.now(UTC) + timedelta(hours=1)
    return Limits(future_tolerance=max(ahead, timedelta(minutes=5)))


def _plan(scheduler: Scheduler, conn: psycopg.Connection, t: Times) -> tuple[str, int, float]:
    event = scheduler.create_event(
        EventRequest(t.event_start, t.event_end, requested_kw=8.0, incentive_jpy_per_kwh=30.0, site_ids=(SITE,)),
        now=t.morning,
        actor="operator:test",
    )
    (site,) = store.event_sites(conn, event.pk)
    assert site.import_limit_kw is not None
    return event.event_id, event.pk, site.import_limit_kw


def _verify(scheduler: Scheduler, conn: psycopg.Connection, event_id: str, event_pk: int, limit_kw: float,
            t: Times) -> Loop:  # fmt: skip
    scheduler.tick(t.event_start)
    scheduler.tick(t.event_end + timedelta(minutes=1))
    scheduler.tick(t.evening)
    trail = store.audit_trail(conn, event_pk)
    reductions = verified_reductions(conn, event_pk)[SITE]
    (line,) = settlement_lines(conn, event_id=event_id)
    return Loop(
        limit_kw=limit_kw,
        event_kwh=[float(r.actual_kwh) for r in reductions if r.actual_kwh is not None],
        reductions_kwh=[float(r.reduction_kwh) for r in reductions if r.reduction_kwh is not None],
        delivered_kwh=line.delivered_kwh,
        statuses=[row["to_status"] for row in trail if row["to_status"] is not None],
    )


def _over_mqtt(db_url: str, broker_port: int, t: Times) -> Loop:
    with (
        depot_loop(db_url, broker_port, t.morning, client_id="dr-mqtt", history_start=t.history_start,
                   limits=_limits_ahead(t), timeout_s=60) as loop,
        psycopg.connect(db_url) as conn,
    ):  # fmt: skip
        scheduler = Scheduler(conn, loop.dispatcher, loop.metrics)
        event_id, event_pk, limit_kw = _plan(scheduler, conn, t)
        scheduler.dispatch(event_id, now=t.morning, actor="operator:test")
        ack = loop.dispatcher.acks.get(timeout=10)
        scheduler.handle_ack(ack.site_id, ack.payload, now=t.morning)
        assert loop.ems.apply_pending() == 1
        send_history(loop.publisher, db_url, t.morning + timedelta(seconds=STEP_S), t.evening, timeout_s=60)
        return _verify(scheduler, conn, event_id, event_pk, limit_kw, t)


class _NoMqttSignal:
    """The scheduler's MQTT signal goes nowhere: the switched depot no longer listens on MQTT."""

    def publish(self, site_id: str, payload: bytes, status: str) -> None:
        pass


def _over_oadr2b(db_url: str, broker_port: int, t: Times, pki: dict[str, KeyPair]) -> tuple[Loop, SiteOadr2bVen]:
    register_depot(db_url, SITE)
    with psycopg.connect(db_url) as conn:
        add_ven(conn, "depot-ven", site_ids=[SITE], fingerprint=pki["depot"].fingerprint, ven_id="VEN-DEPOT")
        conn.commit()
    address = BrokerAddress("127.0.0.1", broker_port)
    sim = SiteSimulator(SiteSpec(site_id=SITE), t.history_start, seed=3)
    clock_lock = threading.Lock()
    sim_now = [t.morning]

    def clock() -> datetime:
        with clock_lock:
            return sim_now[0]

    settings = Oadr2bSettings(port=free_port(), tls_cert=pki["vtn"].cert, tls_key=pki["vtn"].key,
                              tls_ca=pki["ca"].cert, poll_interval_s=1)  # fmt: skip
    with running_ingest(db_url, broker_port, limits=_limits_ahead(t)), psycopg.connect(db_url) as conn:
        # The meter's history still arrives as the gateway's backlog (the baseline needs weeks of it);
        # from the switch on, the depot speaks 2.0b only.
        publisher = SimulationPublisher([sim], address, client_id="sim-depot-2b")
        try:
            send_history(publisher, db_url, t.history_start, t.morning, timeout_s=60)
        finally:
            publisher.close()
        vtn = VtnThread(settings, db_url, clock=clock)
        ven = SiteOadr2bVen(sim, ven_name="depot-ven", vtn_url=vtn.url, cert=pki["depot"].cert,
                            key=pki["depot"].key, ca_file=pki["ca"].cert, vtn_fingerprint=pki["vtn"].fingerprint)  # fmt: skip
        try:
            vtn.start()
            ven.start()
            scheduler = Scheduler(conn, _NoMqttSignal(), SchedulerMetrics())
            event_id, event_pk, limit_kw = _plan(scheduler, conn, t)
            scheduler.dispatch(event_id, now=t.morning, actor="operator:test")
            # Within a poll or two (1 s) the VEN has the event, obeys it and says so.
            wait_for(lambda: event_opt_states(conn, event_pk), lambda s: bool(s) and s[0][3] == "optIn", 20)
            assert ven.apply_pending() == 1
            scheduler.tick(t.morning)  # the optIn is the depot's acknowledgement, as an MQTT ack is
            assert store.get_event(conn, event_id).status == "acknowledged"  # type: ignore[union-attr]
            scheduler.tick(t.morning)
            acks = conn.execute("SELECT accepted, payload FROM dr_acks").fetchall()
            assert len(acks) == 1  # taken once
            assert acks[0][0] is True
            assert b"OpenADR 2.0b optIn by VEN-DEPOT" in bytes(acks[0][1])
            now = t.morning
            while now < t.evening:
                now += timedelta(seconds=STEP_S)
                with clock_lock:
                    sim_now[0] = now
                ven.step(now)
                if now.minute % 30 == 0 and now.second == 0:
                    ven.report_now()  # the slot just closed (and the seven before it)
            (site,) = store.event_sites(conn, event_pk)
            reported = wait_for(
                lambda: reported_usage_kwh(conn, event_pk, site.site_pk),
                lambda r: t.event_end - timedelta(minutes=30) in r and t.event_start - timedelta(hours=4) in r,
                30,
            )
            assert min(reported) == t.event_start - timedelta(hours=4)  # the adjustment window is reported too
            return _verify(scheduler, conn, event_id, event_pk, limit_kw, t), ven
        finally:
            ven.close()
            vtn.stop()


def test_depot_as_2b_ven_completes_the_same_dr_loop_as_over_mqtt(
    two_databases: tuple[str, str], broker: EmbeddedBroker, pki: dict[str, KeyPair], tmp_path: Path
) -> None:
    mqtt_db, oadr2b_db = two_databases
    t = _times()
    over_mqtt = _over_mqtt(mqtt_db, broker.port, t)
    over_2b, ven = _over_oadr2b(oadr2b_db, broker.port, t, pki)

    # The 2.0b VEN got the peak-cut once, as LOAD_DISPATCH, and opted in; no telemetry came after the switch.
    assert [(m, opt) for _, m, _, opt in ven.answered] == [(0, "optIn")]
    assert slot_imports_kwh(oadr2b_db, t.event_start, t.event_end) == []
    # The same plan went out both ways, and the depot held it both ways.
    assert over_2b.limit_kw == pytest.approx(over_mqtt.limit_kw)
    assert len(over_2b.event_kwh) == len(over_mqtt.event_kwh) == 4
    assert max(over_2b.event_kwh) * 2 <= over_2b.limit_kw + 0.5
    # Verification counted the 2.0b usage reports where it counted the meter: the same delivered reduction.
    assert over_2b.event_kwh == pytest.approx(over_mqtt.event_kwh, abs=1e-3)
    assert over_2b.reductions_kwh == pytest.approx(over_mqtt.reductions_kwh, abs=1e-3)
    assert over_mqtt.delivered_kwh > 0
    assert over_2b.delivered_kwh == pytest.approx(over_mqtt.delivered_kwh, abs=1e-2)
    print(
        f"limit {over_mqtt.limit_kw:.1f} kW; delivered over MQTT {over_mqtt.delivered_kwh:.3f} kWh, "
        f"over 2.0b {over_2b.delivered_kwh:.3f} kWh; per slot {over_2b.reductions_kwh}"
    )
    assert over_mqtt.statuses == ["planned", "dispatched", "acknowledged", "active", "completed"]
    assert over_2b.statuses == over_mqtt.statuses
