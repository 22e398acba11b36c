"""Shared by the DR loop tests: the simulated depot over MQTT, its event day, and its 30-minute rows as stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import psycopg

from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.metrics import SchedulerMetrics
from tests.integration.ingest_fixtures import register_depot, running_ingest
from tests.support.waiting import wait_for
from vpp.domain.slots import JST
from vpp.domain.telemetry import Limits
from vpp.mqtt import BrokerAddress
from vpp.simulation.ems_link import SiteEmsLink
from vpp.simulation.model import SiteSimulator, SiteSpec
from vpp.simulation.publisher import SimulationPublisher

SITE = "depot-a"
EVENT_DAY = date(2026, 11, 20)  # a Friday: six complete weekdays of history before it
STEP_S = 300


def jst(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), JST)


def slot_imports_kwh(db_url: str, start: datetime, end: datetime) -> list[float]:
    return slot_values(db_url, start, end, "e.import_kwh")


def slot_values(db_url: str, start: datetime, end: datetime, expression: str) -> list[float]:
    """One value per stored slot of the depot in [start, end): ``expression`` over ``site_energy_30min e``."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            f"""SELECT {expression} FROM site_energy_30min e JOIN sites s ON s.id = e.site_pk
                WHERE s.site_id = %s AND e.slot_start >= %s AND e.slot_start < %s ORDER BY e.slot_start""",
            (SITE, start, end),
        ).fetchall()
    return [float(row[0]) for row in rows]


def rolled_up_to(db_url: str, slot: datetime) -> bool:
    return len(slot_imports_kwh(db_url, slot, slot + timedelta(minutes=30))) == 1


def send_history(
    publisher: SimulationPublisher, db_url: str, start: datetime, end: datetime, *, timeout_s: float = 30
) -> None:
    """The depot's telemetry from ``start`` to ``end`` published, acknowledged and rolled up to its last slot."""
    publisher.backfill(start, end, STEP_S, per_message=48)
    assert publisher.wait_acked(timeout_s)
    wait_for(lambda: rolled_up_to(db_url, end - timedelta(minutes=30)), bool, timeout_s=timeout_s)


@dataclass(frozen=True)
class DepotLoop:
    """The depot's simulator, its telemetry publisher and EMS link, and the scheduler's dispatcher, connected."""

    sim: SiteSimulator
    publisher: SimulationPublisher
    ems: SiteEmsLink
    dispatcher: Dispatcher
    metrics: SchedulerMetrics


@contextmanager
def depot_loop(
    db_url: str,
    broker_port: int,
    until: datetime,
    *,
    client_id: str,
    spec: SiteSpec | None = None,
    history_start: datetime | None = None,
    limits: Limits | None = None,
    timeout_s: float = 30,
) -> Iterator[DepotLoop]:
    """The depot registered and simulated (seed 3), the real ingest worker running (with ``limits``), its EMS
    and the DR dispatcher connected over MQTT; telemetry from ``history_start`` (by default eight days before
    the event day) published up to ``until`` and rolled up, each within ``timeout_s``."""
    register_depot(db_url, SITE)
    address = BrokerAddress("127.0.0.1", broker_port)
    start = history_start or jst(EVENT_DAY - timedelta(days=8), 23) - timedelta(days=1)
    sim = SiteSimulator(spec or SiteSpec(site_id=SITE), start, seed=3)
    metrics = SchedulerMetrics()
    dispatcher = Dispatcher(address, metrics, client_id=client_id)
    with running_ingest(db_url, broker_port, limits=limits or Limits()):
        publisher = SimulationPublisher([sim], address, client_id="sim-depot-a")
        ems = SiteEmsLink(sim, "127.0.0.1", broker_port)
        dispatcher.start()
        try:
            assert dispatcher.connected.wait(10)
            assert ems.subscribed.wait(10)
            send_history(publisher, db_url, start, until, timeout_s=timeout_s)
            yield DepotLoop(sim, publisher, ems, dispatcher, metrics)
        finally:
            dispatcher.stop()
            ems.close()
            publisher.close()
