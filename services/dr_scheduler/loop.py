"""The DR scheduler's loop: one database connection, acknowledgements from the broker, the lifecycle tick
(start, complete, verify) and live demand control every few seconds.

Events are created, adjusted and cancelled through the API (or `vpp dr ...`), which write planned events;
dispatching them is this loop's job, so a signal is only ever published from here.

Several processes may run for availability: only the holder of the database lease (leader.py) runs
the loop; the others stand by and take over within a poll of the leader's death. A lost database
(a failover) ends the loop; :func:`serve` reconnects with back-off, takes the lease again and goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg

from vpp.log import kv
from vpp.postgres.connect import connect
from vpp.postgres.dr_events import list_events

from .dispatch import Dispatcher
from .intraday import IntradayReplanner
from .leader import LeaderLease
from .live_control import check_live_demand
from .metrics import SchedulerMetrics
from .peak_programme import PeakProgramme
from .scheduler import Scheduler

__all__ = ["TICK_S", "run_loop", "serve"]

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
    programme = PeakProgramme(scheduler)
    try:
        _ticks(scheduler, dispatcher, stopping, tick_s, leading, programme)
    finally:
        programme.close()  # its worker thread: a solve under way is dropped, the next leader solves again


def _ticks(
    scheduler: Scheduler,
    dispatcher: Dispatcher,
    stopping: threading.Event,
    tick_s: float,
    leading: Callable[[], bool],
    programme: PeakProgramme,
) -> None:
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
            except Exception:
                # Whatever one site sends must not end DR for every site: log it and serve the next.
                if scheduler.conn.closed or scheduler.conn.broken:
                    dispatcher.acks.put(ack)
                    raise psycopg.OperationalError("scheduler lost its database connection") from None
                log.exception("DR ack could not be recorded", extra=kv(site_id=ack.site_id))
                scheduler.conn.rollback()
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
            programme.run(now)  # enrolled battery sites: each slot's limit from the peak programme
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
