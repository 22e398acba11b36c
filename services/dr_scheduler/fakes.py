"""An in-memory MQTT broker for the dispatcher's unit tests: retained signals, PUBACKs that can be withheld,
restarts that lose what the broker held. Its clients stand in for paho's (``Dispatcher(client_factory=...)``)
with the callbacks paho would call, invoked synchronously: nothing here opens a socket.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as mqtt

from vpp.mqtt import BrokerAddress

__all__ = ["FakeBroker"]


@dataclass(frozen=True)
class _Reason:
    is_failure: bool = False


@dataclass(frozen=True)
class _Message:
    topic: str
    payload: bytes


class _PublishInfo:
    """paho's MQTTMessageInfo as the dispatcher reads it: published once the broker PUBACKed."""

    def __init__(self, acked: bool) -> None:
        self._acked = acked

    def is_published(self) -> bool:
        return self._acked


class FakeBroker:
    """One broker: `up` accepts connections, `pubacks` acknowledges publishes; `retained` is what it holds."""

    def __init__(self, address: BrokerAddress, *, up: bool = True) -> None:
        self.address = address
        self.up = up
        self.pubacks = True
        self.retained: dict[str, bytes] = {}
        self.published: list[tuple[str, bytes]] = []  # every publish it accepted, in order
        self.clients: list[_FakeClient] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def client_factory(self, *more: FakeBroker) -> Callable[[BrokerAddress], mqtt.Client]:
        """For ``Dispatcher(client_factory=...)``: a client of this broker, or of the one of `more` asked for."""
        brokers = {b.address: b for b in (self, *more)}
        return lambda address: cast(mqtt.Client, _FakeClient(brokers[address]))

    def stop(self, *, lose_retained: bool = False) -> None:
        """The broker goes down (a crash without persistence loses its retained messages)."""
        self.up = False
        if lose_retained:
            self.retained.clear()
        for client in self.clients:
            client.lost()

    def start(self) -> None:
        self.up = True
        for client in self.clients:
            client.try_connect()

    def wait_retained(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> bool:
        """Block until the broker holds `payload` retained on `topic` (woken by each publish, no polling)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.retained.get(topic) == payload, timeout_s)

    def accept(self, topic: str, payload: bytes, retain: bool, sender: _FakeClient) -> bool:
        if not self.up:
            return False
        with self._changed:
            self.published.append((topic, payload))
            if retain:
                self.retained[topic] = payload
            self._changed.notify_all()
            subscribers = [c for c in self.clients if c is not sender and c.matches(topic)]
        for client in subscribers:
            client.receive(topic, payload)
        return self.pubacks


class _FakeClient:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        broker.clients.append(self)
        self.on_connect: Any = None
        self.on_disconnect: Any = None
        self.on_message: Any = None
        self.on_subscribe: Any = None
        self.connected = False
        self.started = False
        self._filters: set[str] = set()
        self._mids = itertools.count(1)
        self._pending_subacks: list[int] = []

    # -- paho's interface, as the dispatcher uses it ---------------------------------------
    def connect_async(self, *_args: Any, **_kwargs: Any) -> None:
        """No network: the fake is connected from the start."""

    def loop_start(self) -> None:
        self.started = True
        self.try_connect()

    def subscribe(self, topics: list[tuple[str, Any]]) -> tuple[int, int]:
        mid = next(self._mids)
        for topic_filter, _options in topics:
            self._filters.add(topic_filter)
        # The SUBACK comes after subscribe() returned (paho's caller keeps the mid to recognise it).
        self._pending_subacks.append(mid)
        return 0, mid

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> _PublishInfo:
        return _PublishInfo(self.connected and self.broker.accept(topic, payload, retain, self))

    def disconnect(self) -> None:
        self.connected = False

    def loop_stop(self) -> None:
        self.started = False

    def _reset_sockets(self, sockpair_only: bool = False) -> None:
        """No sockets to reset (paho calls this when a client is dropped)."""

    # -- the broker's side -----------------------------------------------------------------
    def try_connect(self) -> None:
        if self.started and self.broker.up and not self.connected:
            self.connected = True
            self._filters = set()  # a clean session: subscriptions are made again on connect
            self.on_connect(self, None, None, _Reason(), None)
            self._deliver_subacks()

    def _deliver_subacks(self) -> None:
        while self._pending_subacks:
            self.on_subscribe(self, None, self._pending_subacks.pop(0), [], None)
            # As a broker does: the retained messages matching the new subscription follow the SUBACK.
            for topic, payload in sorted(self.broker.retained.items()):
                if self.matches(topic):
                    self.receive(topic, payload)

    def lost(self) -> None:
        if self.connected:
            self.connected = False
            self.on_disconnect(self, None, None, _Reason(is_failure=True), None)

    def matches(self, topic: str) -> bool:
        return self.connected and any(mqtt.topic_matches_sub(f, topic) for f in self._filters)

    def receive(self, topic: str, payload: bytes) -> None:
        self.on_message(self, None, _Message(topic, payload))
