"""The ingest worker's rules with fakes for its database and broker (services/ingest/fakes.py): milliseconds,
no PostgreSQL, no Mosquitto. The slow fault tests (tests/integration/test_ingest_faults.py) prove the same
rules against the real servers; these pin them down where a refactor breaks them first."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.ingest.fakes import FakeReadingStore, FakeRegistry, FakeRollup, FakeSubscriber, Journal
from services.ingest.worker import IngestConfig, IngestWorker
from vpp.domain.devices import DeviceKind, DeviceRef
from vpp.mqtt import BrokerAddress

DEVICES = {("depot", "meter-1"): DeviceRef(7, 3, DeviceKind.METER)}


def _telemetry(minute: int) -> bytes:
    ts = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minute)
    return json.dumps({"ts": ts.isoformat(), "power_kw": 5.0}).encode()


class Harness:
    def __init__(self, journal: Journal, store: FakeReadingStore, worker: IngestWorker) -> None:
        self.journal = journal
        self.store = store
        self.worker = worker

    @property
    def subscriber(self) -> FakeSubscriber:
        assert isinstance(self.worker.subscriber, FakeSubscriber)
        return self.worker.subscriber


def _running(**options: object) -> Iterator[Harness]:
    journal = Journal()
    store = FakeReadingStore(journal)
    config = IngestConfig(
        database_url="postgresql://unused",  # never connected: every adapter is a fake
        broker=BrokerAddress("fake-broker", 1883),
        batch_max_wait_s=0.01,
        batch_min_wait_s=0.0,
        retry_delay_s=0.001,
        idle_poll_s=0.01,
        rollup_interval_s=3600.0,
        **options,  # type: ignore[arg-type]
    )
    worker = IngestWorker(
        config,
        open_writer=store.open_writer,
        registry=FakeRegistry(DEVICES),
        rollup=FakeRollup(),
        make_subscriber=functools.partial(FakeSubscriber, journal=journal),
    )
    thread = worker.start_in_thread()
    assert worker.subscriber.subscribed.wait(1)
    yield Harness(journal, store, worker)
    worker.stop()
    thread.join(5)
    assert worker.stopped.is_set()


@pytest.fixture
def harness() -> Iterator[Harness]:
    yield from _running()


@pytest.fixture
def ha_harness() -> Iterator[Harness]:
    """Confirming only what a standby has too (VPP_INGEST_CONFIRM_REPLICATED)."""
    yield from _running(confirm_replicated=True, confirm_replicated_wait_s=0.01)


def test_a_message_is_acknowledged_only_after_its_batch_committed(harness: Harness) -> None:
    mids = [harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", _telemetry(m)) for m in (1, 2, 3)]
    assert harness.journal.wait_acked(3)
    assert sorted(harness.journal.acked()) == sorted(mids)
    kinds = [k for k in harness.journal.kinds() if k in {"commit", "ack"}]
    assert kinds[0] == "commit"
    for index, kind in enumerate(kinds):  # the batches may split the three; each batch: commit, then ack
        if kind == "ack":
            assert kinds[index - 1] == "commit", kinds
    assert harness.store.stored_rows == 3


def test_a_failed_commit_acknowledges_nothing_and_retries(harness: Harness) -> None:
    harness.store.fail_commits = 2
    mid = harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", _telemetry(1))
    assert harness.journal.wait_for("ack")
    assert [k for k in harness.journal.kinds() if k != "confirm"] == ["failed commit", "failed commit", "commit", "ack"]
    assert harness.subscriber.acked == [mid]
    assert harness.store.opened == 3  # each retry on a fresh connection
    assert harness.worker.metrics.db_errors._value.get() == 2


def test_stored_confirmations_are_published_only_after_the_commit(harness: Harness) -> None:
    harness.store.fail_commits = 1
    harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", _telemetry(1))
    assert harness.journal.wait_for("ack")
    assert harness.journal.kinds() == ["failed commit", "commit", "confirm", "ack"]
    ((topic, payload),) = harness.subscriber.confirmed
    assert topic.startswith("vpp/v1/depot/")
    assert b"meter-1" in payload


def test_a_rejected_message_is_dead_lettered_in_the_commit_and_then_acknowledged(harness: Harness) -> None:
    mid = harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", b"not json")
    assert harness.journal.wait_for("ack")
    assert harness.journal.kinds() == ["commit", "ack"]
    assert [d.reason for d in harness.store.dead_letters] == ["malformed_json"]
    assert harness.subscriber.acked == [mid]


def test_with_ha_confirmation_a_batch_is_confirmed_after_a_standby_has_it(ha_harness: Harness) -> None:
    ha_harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", _telemetry(1))
    assert ha_harness.journal.wait_for("ack")
    assert ha_harness.journal.kinds() == ["commit", "replication check", "confirm", "ack"]


def test_with_ha_confirmation_an_unreplicated_batch_is_acked_but_not_confirmed(ha_harness: Harness) -> None:
    """The primary has it (the broker may forget it); the site is not told, so its gateway resends later."""
    ha_harness.store.replicated = False
    mid = ha_harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", _telemetry(1))
    assert ha_harness.journal.wait_for("ack")
    assert ha_harness.journal.kinds() == ["commit", "replication check", "ack"]
    assert ha_harness.subscriber.confirmed == []
    assert ha_harness.subscriber.acked == [mid]
    assert ha_harness.worker.metrics.unreplicated_batches._value.get() == 1
    # Once a standby has it again, the gateway's resend is confirmed.
    ha_harness.store.replicated = True
    ha_harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", _telemetry(1))
    assert ha_harness.journal.wait_for("confirm")


def test_a_stopping_worker_whose_commits_hang_still_ends_and_acknowledges_nothing_it_did_not_store() -> None:
    """A supervisor's SIGTERM must end ingest even when the database stopped answering mid-commit (seen
    once in CI: a worker that never exited). What it could not store stays unacknowledged for the broker
    to deliver again."""
    harness_iter = _running(stop_flush_timeout_s=0.3, batch_max_messages=1)
    harness = next(harness_iter)
    harness.store.commit_gate.clear()
    try:
        # One batch hangs in the writer, two wait in the hand-off queue, the next blocks the hand-off.
        for minute in range(1, 8):
            harness.subscriber.deliver("vpp/v1/depot/meter-1/telemetry", _telemetry(minute))
        started = time.monotonic()
        with pytest.raises(StopIteration):
            next(harness_iter)  # stop(), then the worker must have stopped (asserted by the harness)
        assert time.monotonic() - started < 3.0
        assert harness.journal.acked() == []
        assert harness.store.stored_rows == 0
    finally:
        harness.store.commit_gate.set()


class _OutageRegistry(FakeRegistry):
    """A registry whose probe meets a database outage the first ``failures`` times."""

    def __init__(self, devices: dict[tuple[str, str], DeviceRef], failures: int) -> None:
        super().__init__(devices)
        self.failures = failures

    def register(self, key: tuple[str, str], ref: DeviceRef) -> None:
        self._devices[key] = ref

    def registered_any(self, site_ids: Iterable[str], devices: Iterable[tuple[str, str]]) -> bool:
        if self.failures > 0:
            self.failures -= 1
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return super().registered_any(site_ids, devices)


def test_a_site_registered_during_a_database_outage_is_stored_not_dead_lettered() -> None:
    # The site is registered after the worker loaded the registry, and the probe that would find it meets an
    # outage: its first reading must wait for the database, not become a dead letter that is then acknowledged.
    journal = Journal()
    store = FakeReadingStore(journal)
    registry = _OutageRegistry(DEVICES, failures=3)
    config = IngestConfig(
        database_url="postgresql://unused", broker=BrokerAddress("fake-broker", 1883), batch_max_wait_s=0.01,
        batch_min_wait_s=0.0, retry_delay_s=0.001, idle_poll_s=0.01, rollup_interval_s=3600.0,
        registry_probe_interval_s=0.0,
    )  # fmt: skip
    worker = IngestWorker(config, open_writer=store.open_writer, registry=registry, rollup=FakeRollup(),
                          make_subscriber=functools.partial(FakeSubscriber, journal=journal))  # fmt: skip
    thread = worker.start_in_thread()
    try:
        assert worker.subscriber.subscribed.wait(1)
        registry.register(("newsite", "meter-9"), DeviceRef(9, 8, DeviceKind.METER))
        subscriber = worker.subscriber
        assert isinstance(subscriber, FakeSubscriber)
        mid = subscriber.deliver("vpp/v1/newsite/meter-9/telemetry", _telemetry(1))
        assert journal.wait_for("ack")
        assert subscriber.acked == [mid]
        assert registry.failures == 0  # the probe was retried through the outage
        assert store.dead_letters == []
        assert store.stored_rows == 1
    finally:
        worker.stop()
        thread.join(5)
