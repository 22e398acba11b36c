"""`python -m services.dr_scheduler`: the DR scheduler process, configured from VPP_* settings.

One loop, one database connection: acknowledgements from the broker, the lifecycle tick (start,
complete, verify) and live demand control every few seconds. Events are created, adjusted and
cancelled through the API (or `vpp dr ...`), which write planned events; dispatching them is this
process's job, so a signal is only ever published from here.

Several processes may run for availability: only the holder of the database lease (leader.py) runs
the loop; the others stand by and take over within a poll of the leader's death. A lost database
(a failover) ends the loop; the process reconnects with back-off, takes the lease again and goes on.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from types import FrameType

import psycopg
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
from .leader import LeaderLease
from .live_control import check_live_demand
from .metrics import SchedulerMetrics
from .scheduler import Scheduler

log = logging.getLogger("vpp.dr_scheduler")

TICK_S = 5.0


def run_loop(
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    stopping: threading.Event,
    tick_s: float = TICK_S,
    leading: Callable[[], bool] = lambda: True,
) -> None:
    """Serve acks as they come and tick every ``tick_s`` until ``stopping`` is set or ``leading()`` fails.

    Raises psycopg.OperationalError when the work connection is lost (the caller reconnects).
    """
    next_tick = 0.0
    replanner = IntradayReplanner(scheduler)
    while not stopping.is_set():
        try:
            ack = dispatcher.acks.get(timeout=min(max(next_tick - time.monotonic(), 0.0), 0.5))
        except queue.Empty:
            pass
        else:
            try:
                scheduler.handle_ack(ack.site_id, ack.payload, now=datetime.now(UTC))
            except psycopg.OperationalError:
                dispatcher.acks.put(ack)  # recorded after the reconnect, not dropped with the connection
                raise
            continue
        if time.monotonic() < next_tick:
            continue
        if not leading():
            return
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
            if scheduler.conn.closed or scheduler.conn.broken:
                raise psycopg.OperationalError("scheduler lost its database connection") from None
            # One bad tick (database blip, broker timeout) must not end the process; the next retries.
            log.exception("scheduler tick failed", extra=kv(at=now.isoformat()))
            scheduler.conn.rollback()
        scheduler.metrics.tick_seconds.observe(time.perf_counter() - started)


def serve(
    database_url: str,
    make_dispatcher: Callable[[], Dispatcher],
    metrics: SchedulerMetrics,
    stopping: threading.Event,
    *,
    instance: str,
    tick_s: float = TICK_S,
    lease_poll_s: float = 1.0,
) -> None:
    """Stand by until leading, then run the loop; after losing the database, reconnect with back-off.

    The broker connection lasts one term of leadership: a standby publishes nothing, and the broker
    binds the client id to the scheduler's account, so a second connection would evict the leader's.
    """
    lease = LeaderLease(database_url, instance=instance, poll_s=lease_poll_s)
    delay_s = 0.5
    try:
        while not stopping.is_set():
            dispatcher: Dispatcher | None = None
            try:
                if not lease.acquire(stopping):
                    break
                dispatcher = make_dispatcher()
                dispatcher.start()
                with connect(database_url, application_name=f"dr-scheduler:{instance}") as conn:
                    delay_s = 0.5
                    run_loop(Scheduler(conn, dispatcher, metrics), dispatcher, stopping, tick_s, lease.held)
            except psycopg.OperationalError as error:
                log.warning("database unavailable; reconnecting", extra=kv(error=str(error).strip()[:200]))
                stopping.wait(delay_s)
                delay_s = min(delay_s * 2, 5.0)
            finally:
                if dispatcher is not None:
                    dispatcher.stop()
            lease.release()  # a new session must win the lock again before anything is dispatched
    finally:
        lease.release()


def instance_name(settings: Settings) -> str:
    return settings.scheduler_instance or f"{socket.gethostname()}-{os.getpid()}"


def dispatcher_from_settings(
    settings: Settings, broker: BrokerAddress | Sequence[BrokerAddress], metrics: SchedulerMetrics
) -> Dispatcher:
    # The scheduler's account on a configured broker, and on the embedded one whenever there is a
    # password (always in development, where `vpp up`'s Mosquitto enforces the roles).
    authenticated = bool(settings.broker_urls) or settings.mqtt_scheduler_password is not None
    return Dispatcher(
        broker, metrics,
        client_id=f"dr-scheduler-{instance_name(settings)}",  # unique: two schedulers must not evict each other
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
        dispatcher_from_settings(settings, brokers, metrics)  # a missing secret stops the start, not a takeover
    except MissingSecretError as error:
        sys.exit(f"vpp: {error}")
    stopping = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve(
        database_url, lambda: dispatcher_from_settings(settings, brokers, metrics), metrics, stopping,
        instance=instance_name(settings), tick_s=settings.scheduler_tick_s, lease_poll_s=settings.scheduler_lease_poll_s,
    )  # fmt: skip


if __name__ == "__main__":
    main()
