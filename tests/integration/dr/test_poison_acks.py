"""A site's malformed DR ack must not stop the DR scheduler: every site publishes on its own `dr/ack`, so one
buggy or hostile EMS could otherwise end DR dispatch for the whole region.

Found against `vpp up`: an ack whose `event_id` held a NUL (PostgreSQL text cannot) raised psycopg.DataError
out of `handle_ack`, which ended the scheduler's loop (in `vpp up` its thread died silently; the standalone
scheduler process exits). `"revision": Infinity` raised OverflowError the same way, and a revision beyond
PostgreSQL's integer NumericValueOutOfRange. Each is now stored in `dr_acks` as a bad ack with its reason.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import psycopg
import pytest

from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.loop import run_loop
from services.dr_scheduler.metrics import SchedulerMetrics
from services.dr_scheduler.scheduler import Scheduler
from tests.integration.ingest_fixtures import register_depot, scalar
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress, make_client
from vpp.postgres.migrate import upgrade

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).isoformat()


def _ack(event_id: object = "evt-1", revision: object = 1, detail: object = "") -> bytes:
    return json.dumps({"event_id": event_id, "revision": revision, "status": "accepted", "ts": NOW, "detail": detail},
                      allow_nan=True).encode()  # fmt: skip


POISON = [
    _ack(event_id="evt-1\u0000"),
    _ack(revision=float("inf")),
    _ack(revision=float("nan")),
    _ack(revision=99_999_999_999),
    _ack(revision=-1),
    _ack(revision=True),
    _ack(event_id={"id": 1}),
    _ack(event_id="e" * 10_000),
    b'{"event_id": "evt-1", "revision": 1, "status": "accepted", "ts": "2026-12-05T10:00:00"}',  # naive
    b'{"event_id": "evt-\\ud800", "revision": 1, "status": "accepted", "ts": "' + NOW.encode() + b'"}',
    b'{"event_id": "evt-1", "revision": 1, "status": "accepted\\u0000", "ts": "' + NOW.encode() + b'"}',
    b"[1, 2]",
    b'"accepted"',
]


def test_malformed_acks_are_recorded_as_bad_and_the_scheduler_keeps_serving(
    db_url: str, broker: EmbeddedBroker
) -> None:
    upgrade(db_url)
    register_depot(db_url, "depot-a")
    metrics = SchedulerMetrics()
    dispatcher = Dispatcher(BrokerAddress("127.0.0.1", broker.port), metrics, client_id="dr-poison-test")
    dispatcher.start()
    stopping = threading.Event()
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            with psycopg.connect(db_url) as conn:
                run_loop(Scheduler(conn, dispatcher, metrics), dispatcher, stopping, tick_s=0.2)
        except BaseException as error:  # the test reports it instead of a thread's stderr
            failures.append(error)

    thread = threading.Thread(target=serve, daemon=True)
    site = make_client("gw-depot-a")
    site.connect("127.0.0.1", broker.port)
    site.loop_start()
    try:
        assert dispatcher.connected.wait(10)
        thread.start()
        # The scheduler's subscription is in place once an ack comes through.
        wait_for(lambda: _publish_and_count(site, _ack(event_id="probe"), db_url, "probe"), lambda n: n > 0)

        for payload in POISON:
            site.publish("vpp/v1/depot-a/dr/ack", payload, qos=1).wait_for_publish(5)
        site.publish("vpp/v1/depot-a/dr/ack", _ack(event_id="after-poison", detail="a\u0000b"), qos=1)
        wait_for(lambda: scalar(db_url, "SELECT count(*) FROM dr_acks WHERE event_id = 'after-poison'"),
                 lambda n: n == 1, timeout_s=15)  # fmt: skip
        assert not failures, failures
        assert thread.is_alive(), "the scheduler loop ended"
        bad = scalar(db_url, "SELECT count(*) FROM dr_acks WHERE error IS NOT NULL")
        assert bad == len(POISON), "every malformed ack is kept with its reason"
        assert scalar(db_url, "SELECT count(*) FROM dr_acks WHERE error IS NULL AND event_id IS NULL") == 0
        ticks_before = _ticks(metrics)
        wait_for(lambda: _ticks(metrics), lambda n: n > ticks_before)  # and it still ticks
    finally:
        stopping.set()
        thread.join(10)
        site.loop_stop()
        site.disconnect()
        dispatcher.stop()


def _publish_and_count(site: object, payload: bytes, db_url: str, event_id: str) -> int:
    site.publish("vpp/v1/depot-a/dr/ack", payload, qos=1)  # type: ignore[attr-defined]
    return int(scalar(db_url, "SELECT count(*) FROM dr_acks WHERE event_id = %s", event_id))


def _ticks(metrics: SchedulerMetrics) -> float:
    (family,) = metrics.tick_seconds.collect()
    return next(sample.value for sample in family.samples if sample.name.endswith("_count"))
