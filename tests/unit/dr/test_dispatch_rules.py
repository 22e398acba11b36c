"""The dispatcher's rules with an in-memory broker (services/dr_scheduler/fakes.py): milliseconds, no
Mosquitto. tests/integration/dr and the broker-redundancy tests prove the same against real brokers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from services.dr_scheduler.dispatch import Dispatcher, SignalNotDelivered
from services.dr_scheduler.fakes import FakeBroker
from services.dr_scheduler.metrics import SchedulerMetrics
from vpp.domain.dr_events import DrSignal, SignalInterval, signal_payload
from vpp.mqtt import BrokerAddress, dr_signal_topic

START = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
A = BrokerAddress("broker-a", 1883)
B = BrokerAddress("broker-b", 1883)


def _signal(revision: int, limit_kw: float = 40.0) -> bytes:
    interval = SignalInterval(START, START + timedelta(minutes=30), limit_kw)
    issued_at = START - timedelta(hours=1) + timedelta(minutes=revision)
    return signal_payload(DrSignal("dr-1", revision, "peak_cut", "active", issued_at, (interval,)))


@contextmanager
def _dispatcher(*brokers: FakeBroker) -> Iterator[Dispatcher]:
    dispatcher = Dispatcher(
        [b.address for b in brokers],
        SchedulerMetrics(),
        publish_timeout_s=0.05,
        resync_settle_s=0.001,
        client_factory=brokers[0].client_factory(*brokers[1:]),
    )
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop()


def test_a_signal_counts_as_dispatched_only_once_a_broker_has_it() -> None:
    broker = FakeBroker(A)
    broker.pubacks = False  # the broker takes the message but never acknowledges it
    with _dispatcher(broker) as dispatcher:
        with pytest.raises(SignalNotDelivered):
            dispatcher.publish("site-1", _signal(1), "active")
        assert dispatcher.metrics.signals.labels("active")._value.get() == 0
        assert dispatcher.metrics.publish_failures._value.get() == 1

        broker.pubacks = True
        dispatcher.publish("site-1", _signal(2), "active")
        assert broker.retained[dr_signal_topic("site-1")] == _signal(2)
        assert dispatcher.metrics.signals.labels("active")._value.get() == 1


def test_no_broker_connected_is_not_dispatched() -> None:
    with _dispatcher(FakeBroker(A, up=False)) as dispatcher, pytest.raises(SignalNotDelivered):
        dispatcher.publish("site-1", _signal(1), "active")


def test_a_retained_signal_is_republished_to_a_broker_that_comes_back() -> None:
    a, b = FakeBroker(A), FakeBroker(B)
    with _dispatcher(a, b) as dispatcher:
        dispatcher.publish("site-1", _signal(1), "active")
        assert b.wait_retained(dr_signal_topic("site-1"), _signal(1))

        b.stop(lose_retained=True)  # a crash that lost its retained messages
        dispatcher.publish("site-1", _signal(2), "active")  # one broker holding it is enough
        assert dr_signal_topic("site-1") not in b.retained
        b.start()
        assert b.wait_retained(dr_signal_topic("site-1"), _signal(2))


def test_a_signal_no_broker_took_is_not_given_to_a_broker_that_comes_back() -> None:
    a, b = FakeBroker(A), FakeBroker(B, up=False)
    with _dispatcher(a, b) as dispatcher:
        a.pubacks = False
        with pytest.raises(SignalNotDelivered):
            dispatcher.publish("site-0", _signal(1), "active")
        a.pubacks = True
        dispatcher.publish("site-1", _signal(1), "active")
        b.start()
        # The resync hands over every newest signal in one pass; the undelivered one would have come first.
        assert b.wait_retained(dr_signal_topic("site-1"), _signal(1))
        assert dr_signal_topic("site-0") not in b.retained


def test_a_newer_signal_found_on_one_broker_is_given_to_the_others() -> None:
    a, b = FakeBroker(A), FakeBroker(B)
    a.retained[dr_signal_topic("site-1")] = _signal(3)  # issued by another scheduler instance
    b.retained[dr_signal_topic("site-1")] = _signal(2)  # b missed it
    with _dispatcher(a, b):
        assert b.wait_retained(dr_signal_topic("site-1"), _signal(3))
        assert a.retained[dr_signal_topic("site-1")] == _signal(3)  # the older one never overwrites it
