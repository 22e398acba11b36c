"""The whole platform on private servers, as `vpp up` composes it, plus the API and the DR scheduler.

Regions and the simulated sites are seeded as on a fresh installation; the simulator sends the last
hours as a gateway backlog, then live readings every couple of seconds while each simulated site's
EMS obeys and acknowledges DR signals. The scheduler runs its real loop in a thread and the API is
served by uvicorn on a free port. Shared by the end-to-end test and ``docs/screenshots.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from services.api.main import create_app
from services.cli.seed import DEPOT, register_simulated_site, seed_defaults
from services.dr_scheduler.__main__ import run_loop
from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.api.server import serving
from tests.integration.dr.site_ems import SiteEmsLink
from tests.integration.ingest_fixtures import running_ingest
from tests.support.waiting import wait_for
from vpp.mqtt import BrokerAddress
from vpp.settings import load_settings
from vpp.simulation.model import SiteSimulator, fleet_specs
from vpp.simulation.publisher import SimulationPublisher

__all__ = ["DEV_OPERATOR", "Platform", "running_platform"]

CAPACITY_CSV = Path(__file__).resolve().parents[3] / "shared" / "data" / "kawasaki_renewable_capacity_kw.csv"
DEV_OPERATOR = ("dev-operator", "dev-operator-secret")  # the development client of the embedded defaults


@dataclass(frozen=True)
class Platform:
    base_url: str
    site_ids: tuple[str, ...]
    broker_port: int
    db_url: str


def _rolled_up_slots(db_url: str, since: datetime) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM site_energy_30min WHERE slot_start >= %s", (since,)).fetchone()
        return int(row[0]) if row else 0


def _live(publisher: SimulationPublisher, links: list[SiteEmsLink], stop: threading.Event, interval_s: float) -> None:
    while not stop.wait(interval_s):
        for link in links:
            link.apply_pending()
        publisher.step(datetime.now(UTC))


def _declare_capacity(base_url: str) -> None:
    """Import the city's published capacity statistics (shared/data), as an operator would."""
    if not CAPACITY_CSV.is_file():
        return
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = client.post(
            "/api/v1/oauth/token",
            data={"grant_type": "client_credentials", "client_id": DEV_OPERATOR[0], "client_secret": DEV_OPERATOR[1]},
        ).json()["access_token"]
        response = client.post(
            "/api/v1/regions/kawasaki/renewable-capacity/csv",
            params={"source": "Kawasaki City, table 1.4 (FY2020)"},
            content=CAPACITY_CSV.read_bytes(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        )
        response.raise_for_status()


@contextmanager
def running_platform(
    db_url: str, broker_port: int, *, sites: int = 3, backfill_days: float = 8.0, interval_s: float = 2.0
) -> Iterator[Platform]:
    """Seed, ingest, simulate, schedule and serve until the block exits."""
    address = BrokerAddress("127.0.0.1", broker_port)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=backfill_days)
    specs = [DEPOT, *fleet_specs(sites, seed=1)[1:]]
    with psycopg.connect(db_url) as conn:
        seed_defaults(conn)
        for spec in specs[1:]:
            # Partly renewable supply contracts, so the region's chart shows every kind of supply.
            register_simulated_site(conn, spec, is_public=int(spec.site_id[-1]) % 2 == 0, renewable_share=0.3)
        conn.commit()
    simulators = [SiteSimulator(spec, start, seed=i) for i, spec in enumerate(specs)]
    stop = threading.Event()
    with ExitStack() as stack:
        stack.enter_context(running_ingest(db_url, broker_port, client_id="ingest-e2e"))
        publisher = SimulationPublisher(simulators, address, client_id="simulator-e2e")
        stack.callback(publisher.close)
        links = [SiteEmsLink(sim, "127.0.0.1", broker_port) for sim in simulators]
        for link in links:
            stack.callback(link.close)
            assert link.subscribed.wait(10), f"{link.site_id}'s EMS did not subscribe to its DR signals"
        # Coarse history first (the DR forecast wants a week with weekdays and holidays), then fine recent hours.
        recent = now - timedelta(hours=3)
        publisher.backfill(start, recent, step_s=300, per_message=48)
        publisher.backfill(recent + timedelta(seconds=60), now, step_s=60, per_message=60)
        assert publisher.wait_acked(60), "the broker did not acknowledge the backlog"
        wait_for(lambda: _rolled_up_slots(db_url, now - timedelta(hours=1)), lambda n: n >= len(specs) * 2, 60)

        metrics = SchedulerMetrics()
        dispatcher = Dispatcher(address, metrics, client_id="dr-scheduler-e2e")
        dispatcher.start()
        stack.callback(dispatcher.stop)
        assert dispatcher.connected.wait(10), "the DR scheduler did not connect to the broker"
        conn = stack.enter_context(psycopg.connect(db_url, application_name="dr-scheduler-e2e"))
        scheduler_thread = threading.Thread(
            target=run_loop, args=(Scheduler(conn, dispatcher, metrics), dispatcher, stop, 1.0), name="dr-scheduler"
        )
        live_thread = threading.Thread(target=_live, args=(publisher, links, stop, interval_s), name="simulator")
        scheduler_thread.start()
        live_thread.start()

        def _join() -> None:
            stop.set()
            live_thread.join(30)
            scheduler_thread.join(30)

        stack.callback(_join)
        app = create_app(load_settings(environment="development"), database_url=db_url)
        base_url = stack.enter_context(serving(app))
        _declare_capacity(base_url)
        yield Platform(base_url, tuple(spec.site_id for spec in specs), broker_port, db_url)
