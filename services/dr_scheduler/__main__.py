"""`python -m services.dr_scheduler`: the DR scheduler process, configured from VPP_* settings.

One loop, one database connection: acknowledgements from the broker, the lifecycle tick (start,
complete, verify) and live demand control every few seconds. Events are created, adjusted and
cancelled through the API (or `vpp dr ...`), which write planned events; dispatching them is this
process's job, so a signal is only ever published from here.
"""

from __future__ import annotations

import logging
import queue
import signal
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import FrameType

from prometheus_client import start_http_server

from vpp.embedded.resolve import ensure_brokers, ensure_database
from vpp.log import configure_logging, kv
from vpp.mqtt import BrokerAddress
from vpp.postgres.connect import connect
from vpp.postgres.dr_events import list_events
from vpp.postgres.migrate import upgrade
from vpp.settings import MissingSecretError, Settings, settings_or_exit

from .dispatch import Dispatcher
from .intraday import IntradayReplanner
from .live_control import check_live_demand
from .metrics import SchedulerMetrics
from .scheduler import Scheduler

log = logging.getLogger("vpp.dr_scheduler")

TICK_S = 5.0


def run_loop(scheduler: Scheduler, dispatcher: Dispatcher, stopping: threading.Event, tick_s: float = TICK_S) -> None:
    """Serve acks as they come and tick every ``tick_s`` until ``stopping`` is set."""
    next_tick = 0.0
    replanner = IntradayReplanner(scheduler)
    while not stopping.is_set():
        try:
            ack = dispatcher.acks.get(timeout=min(max(next_tick - time.monotonic(), 0.0), 0.5))
            scheduler.handle_ack(ack.site_id, ack.payload, now=datetime.now(UTC))
            continue
        except queue.Empty:
            pass
        if time.monotonic() < next_tick:
            continue
        next_tick = time.monotonic() + tick_s
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            scheduler.process_requests(now)
            for event in list_events(scheduler.conn, statuses=["planned"]):
                if event.pending_action is None:
                    scheduler.dispatch(event.event_id, now=now, actor="scheduler")
            scheduler.conn.commit()
            scheduler.tick(now)
            replanner.run(now)  # today's reduce events, once per slot, from live telemetry
            check_live_demand(scheduler, now, scheduler.metrics)
        except Exception:
            # One bad tick (database blip, broker timeout) must not end the process; the next retries.
            log.exception("scheduler tick failed", extra=kv(at=now.isoformat()))
            scheduler.conn.rollback()
        scheduler.metrics.tick_seconds.observe(time.perf_counter() - started)


def dispatcher_from_settings(
    settings: Settings, broker: BrokerAddress | Sequence[BrokerAddress], metrics: SchedulerMetrics
) -> Dispatcher:
    # The scheduler's account on a configured broker, and on the embedded one whenever there is a
    # password (always in development, where `vpp up`'s Mosquitto enforces the roles).
    authenticated = bool(settings.broker_urls) or settings.mqtt_scheduler_password is not None
    return Dispatcher(
        broker, metrics,
        username=settings.mqtt_scheduler_username if authenticated else None,
        password=settings.secret("mqtt_scheduler_password") if authenticated else None,
    )  # fmt: skip


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    database_url, _db = ensure_database(settings)
    if _db is not None:
        upgrade(database_url)
    brokers, _broker = ensure_brokers(settings)
    metrics = SchedulerMetrics()
    if settings.scheduler_metrics_port:
        start_http_server(settings.scheduler_metrics_port, addr=settings.metrics_host, registry=metrics.registry)
    try:
        dispatcher = dispatcher_from_settings(settings, brokers, metrics)
    except MissingSecretError as error:
        sys.exit(f"vpp: {error}")
    dispatcher.start()
    stopping = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with connect(database_url, application_name="dr-scheduler") as conn:
        run_loop(Scheduler(conn, dispatcher, metrics), dispatcher, stopping, settings.scheduler_tick_s)
    dispatcher.stop()


if __name__ == "__main__":
    main()
