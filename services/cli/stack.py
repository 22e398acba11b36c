"""The whole platform in one process, on servers that are already running: what `vpp up` composes.

Ingest, the DR scheduler and the API are the same code the three deployed services run; here they
run as threads beside each other, with simulated sites whose EMS publishes telemetry and obeys DR
signals over the broker. Each part is started on its own so `vpp up` can show progress between them;
`close()` stops what was started, newest first, and is safe to call after a partial start.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import start_http_server

from services.api.main import create_app
from services.cli.platform_file import PLATFORM_FILE, process_start_ticks, read_platform_file
from services.dr_scheduler.bootstrap import dispatcher_from_settings
from services.dr_scheduler.loop import run_loop
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.scheduler import Scheduler
from services.ingest.bootstrap import worker_from_settings
from services.ingest.metrics import IngestMetrics
from services.ingest.worker import IngestWorker
from vpp.log import kv
from vpp.mqtt import BrokerAddress
from vpp.postgres.connect import connect
from vpp.settings import Settings
from vpp.simulation.ems_link import SiteEmsLink
from vpp.simulation.fleet import SiteFleet
from vpp.simulation.model import SiteSimulator, SiteSpec
from vpp.simulation.oadr2b_ven import SiteOadr2bVen

if TYPE_CHECKING:  # the 2.0b VTN's modules are imported only when `vpp up` is asked for one
    from services.oadr2b.settings import Oadr2bSettings
    from services.oadr2b.thread import VtnThread

__all__ = ["PLATFORM_FILE", "PlatformStack", "StartupError", "read_platform_file"]

log = logging.getLogger("vpp.platform")

FINE_HISTORY = timedelta(hours=3)  # the backlog is sent minute by minute for the last hours, coarser before


class StartupError(RuntimeError):
    """A part of the platform could not start; the message says which and what to do."""


@dataclass
class Endpoints:
    database_url: str
    broker: BrokerAddress
    api_url: str | None = None
    ingest_metrics_url: str | None = None
    scheduler_metrics_url: str | None = None
    oadr2b_vtn_url: str | None = None


def _metrics_server(host: str, port: int, registry: Any, what: str, setting: str) -> str:
    """The metrics URL, or why there is none (said on `vpp up`'s screen, not only in the log)."""
    if not port:
        return f"off ({setting}=0)"
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        log.warning("metrics port unavailable", extra=kv(service=what, port=port, error=str(error)))
        return f"off: port {port} is in use ({error.strerror}); set {setting} to a free port"
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/metrics"


class PlatformStack:
    def __init__(
        self,
        settings: Settings,
        database_url: str,
        broker: BrokerAddress,
        broker_pid: int | None = None,
        more_brokers: Sequence[BrokerAddress] = (),
    ) -> None:
        self.broker_pid = broker_pid
        # Further independent brokers (VPP_MQTT_URLS): ingest, the scheduler and the sites use them all.
        self.more_brokers = list(more_brokers)
        self.settings = settings
        self.endpoints = Endpoints(database_url, broker)
        self._exit = ExitStack()
        self._file_written = False
        self.ingest: IngestWorker | None = None
        self.publisher: SiteFleet | None = None
        self.links: list[SiteEmsLink] = []
        self.vens: list[SiteOadr2bVen] = []  # sites switched to OpenADR 2.0b (no MQTT link, no live telemetry)
        self.vtn: VtnThread | None = None

    # -- parts ---------------------------------------------------------------------------------

    def start_ingest(self) -> IngestWorker:
        metrics = IngestMetrics()
        self.endpoints.ingest_metrics_url = _metrics_server(
            self.settings.metrics_host,
            self.settings.ingest_metrics_port,
            metrics.registry,
            "ingest",
            "VPP_INGEST_METRICS_PORT",
        )
        worker = worker_from_settings(
            self.settings, self.endpoints.database_url, [self.endpoints.broker, *self.more_brokers], metrics
        )
        thread = worker.start_in_thread()

        def _stop() -> None:
            worker.stop()
            thread.join(30)

        self._exit.callback(_stop)
        if not worker.subscriber.subscribed.wait(15):
            raise StartupError(
                f"ingest could not connect and subscribe to the broker at {self.endpoints.broker.host}:{self.endpoints.broker.port}"
            )
        self.ingest = worker
        return worker

    def start_scheduler(self) -> None:
        metrics = SchedulerMetrics()
        self.endpoints.scheduler_metrics_url = _metrics_server(
            self.settings.metrics_host,
            self.settings.scheduler_metrics_port,
            metrics.registry,
            "dr-scheduler",
            "VPP_SCHEDULER_METRICS_PORT",
        )
        dispatcher = dispatcher_from_settings(self.settings, [self.endpoints.broker, *self.more_brokers], metrics)
        dispatcher.start()
        self._exit.callback(dispatcher.stop)
        if not dispatcher.connected.wait(15):
            raise StartupError("the DR scheduler could not connect to the broker")
        conn = self._exit.enter_context(connect(self.endpoints.database_url, application_name="dr-scheduler"))
        stopping = threading.Event()
        thread = threading.Thread(
            target=run_loop,
            args=(Scheduler(conn, dispatcher, metrics), dispatcher, stopping, self.settings.scheduler_tick_s),
            name="dr-scheduler",
            daemon=True,
        )
        thread.start()

        def _stop() -> None:
            stopping.set()
            thread.join(30)

        self._exit.callback(_stop)

    def start_api(self, host: str, port: int) -> str:
        app = create_app(self.settings, database_url=self.endpoints.database_url)
        # log_config=None: uvicorn's records go to the platform's structured log, not over the live view.
        # A dashboard tab keeps connections open; without a bound, Ctrl-C waited for the browser to let go.
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=3
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive():
                raise StartupError(
                    f"the API could not listen on {host}:{port} (in use?); set VPP_API_PORT or pass --api-port"
                )
            if time.monotonic() > deadline:
                raise StartupError("the API did not start within 30 s; see the log")
            time.sleep(0.05)

        def _stop() -> None:
            server.should_exit = True
            thread.join(15)

        self._exit.callback(_stop)
        self.endpoints.api_url = f"http://{host}:{port}"
        return self.endpoints.api_url

    def start_sites(
        self,
        specs: list[SiteSpec],
        history_start: datetime,
        passwords: Mapping[str, str] | None = None,
        *,
        oadr2b_sites: frozenset[str] = frozenset(),
    ) -> SiteFleet:
        """Simulated site gateways (telemetry) and their EMSs (DR signals), from `history_start` on: one
        connection per site, with the site's own broker account (`passwords`: its secret, if the broker
        has roles).

        Sites in `oadr2b_sites` send their backlog like the others but get no MQTT EMS: they are switched
        to 2.0b VENs by :meth:`start_oadr2b_sites` after the backlog."""
        simulators = [SiteSimulator(spec, history_start, seed=i) for i, spec in enumerate(specs)]
        fleet = SiteFleet(simulators, [self.endpoints.broker, *self.more_brokers], passwords, without_ems=oadr2b_sites)
        self._exit.callback(fleet.close)
        self.links = fleet.links
        missing = fleet.not_subscribed(15)
        if missing:
            raise StartupError(
                f"simulated site(s) {', '.join(missing)} could not connect and subscribe to their DR signals "
                "(refused by the broker? see the broker's log under the data folder)"
            )
        self.publisher = fleet
        return fleet

    def start_oadr2b_vtn(self, settings: Oadr2bSettings) -> str:
        """The OpenADR 2.0b VTN (`services.oadr2b`) on its own port and event loop; returns its URL."""
        from services.oadr2b.thread import VtnThread

        vtn = VtnThread(settings, self.endpoints.database_url)
        self._exit.callback(vtn.stop)
        try:
            url = vtn.start()
        except OSError as error:
            raise StartupError(
                f"the 2.0b VTN could not listen on {settings.host}:{settings.port} ({error.strerror}); "
                "set VPP_OADR2B_PORT to a free port"
            ) from None
        self.vtn = vtn
        self.endpoints.oadr2b_vtn_url = url
        return url

    def start_oadr2b_sites(
        self, site_ids: frozenset[str], *, ven_name: str, cert: Path, key: Path, ca_file: Path, vtn_fingerprint: str
    ) -> list[SiteOadr2bVen]:
        """Switch sites to OpenADR 2.0b VENs: from now on they obey 2.0b events and report usage over 2.0b
        only (their gateway stops publishing live telemetry); each registers with its client certificate."""
        assert self.publisher is not None, "start_sites first"
        assert self.endpoints.oadr2b_vtn_url, "start_oadr2b_vtn first"
        for sim in [self.publisher.stop_live_telemetry(site_id) for site_id in sorted(site_ids)]:
            ven = SiteOadr2bVen(sim, ven_name=ven_name, vtn_url=self.endpoints.oadr2b_vtn_url, cert=cert, key=key,
                                ca_file=ca_file, vtn_fingerprint=vtn_fingerprint)  # fmt: skip
            self._exit.callback(ven.close)
            try:
                ven.start()
            except (OSError, RuntimeError, TimeoutError) as error:
                raise StartupError(f"{sim.spec.site_id}'s 2.0b VEN could not register: {error}") from None
            self.vens.append(ven)
        return self.vens

    # -- running -------------------------------------------------------------------------------

    def send_backlog(self, start: datetime, end: datetime, progress: Any = None) -> None:
        """The gateways' backlog, as after an outage: coarse (5-minute, 48 per message) for older history,
        minute by minute for the last hours; returns when the broker has acknowledged all of it."""
        assert self.publisher is not None, "start_sites first"
        fine_from = max(start, end - FINE_HISTORY)
        if fine_from > start:
            self.publisher.backfill(start, fine_from, step_s=300, per_message=48, progress=progress)
            fine_from += timedelta(seconds=60)  # both ends are inclusive: don't send `fine_from` twice
        self.publisher.backfill(fine_from, end, step_s=60, per_message=60, progress=progress)
        if not self.publisher.wait_acked(300):
            raise StartupError("the broker did not acknowledge the simulated backlog within 300 s")

    def step_sites(self, now: datetime) -> None:
        """Apply the DR signals the EMSs received, then publish every site's live readings."""
        assert self.publisher is not None, "start_sites first"
        for link in self.links:
            link.apply_pending()
        for ven in self.vens:
            ven.apply_pending()
        self.publisher.step(now)
        for ven in self.vens:
            ven.step(now)

    def write_platform_file(self, phase: str) -> Path:
        """Where the running platform can be reached, for `vpp` commands, scripts and tests."""
        path = self.settings.data_dir.resolve() / PLATFORM_FILE
        e = self.endpoints
        body = {
            "pid": os.getpid(),
            "process_start_ticks": process_start_ticks(os.getpid()),
            "phase": phase,
            "api_url": e.api_url,
            "dashboard_url": f"{e.api_url}/" if e.api_url else None,
            "broker_url": f"mqtt://{e.broker.host}:{e.broker.port}",
            "database_url": e.database_url,
            "ingest_metrics_url": _url_or_none(e.ingest_metrics_url),
            "scheduler_metrics_url": _url_or_none(e.scheduler_metrics_url),
            "sites": [link.site_id for link in self.links] + [ven.site_id for ven in self.vens],
            "oadr2b_vtn_url": e.oadr2b_vtn_url,
            "oadr2b_sites": [ven.site_id for ven in self.vens],
            "broker_pid": self.broker_pid,  # an embedded Mosquitto, for `vpp status` after a kill -9
        }
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=2))
        temporary.replace(path)  # readers never see half a file
        if not self._file_written:
            self._exit.callback(lambda: path.unlink(missing_ok=True))
            self._file_written = True
        return path

    def close(self) -> None:
        self._exit.close()


def _url_or_none(text: str | None) -> str | None:
    return text if text and text.startswith("http") else None
