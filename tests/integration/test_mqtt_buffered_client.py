"""The buffered paho client against a real Mosquitto: every message arrives once, intact and in order,
with or without v5 properties, large or small; manual acks hold; a buffered publisher gets every PUBACK."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import close_client, make_client, session_properties
from vpp.mqtt_socket import _NO_PROPERTIES as NO_PROPERTIES
from vpp.mqtt_socket import BufferedClient, BufferedSocket

pytestmark = pytest.mark.integration


class _Collector:
    def __init__(self, broker: EmbeddedBroker, client_id: str, *, manual_ack: bool = False) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = make_client(client_id, buffered=True, manual_ack=manual_ack)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect("127.0.0.1", broker.port, clean_start=False, properties=session_properties())
        self.client.subscribe("t/#", options=SubscribeOptions(qos=1))
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


@pytest.fixture
def publisher(broker: EmbeddedBroker) -> Iterator[mqtt.Client]:
    client = make_client("plain-publisher")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    close_client(client)


def test_the_client_uses_the_buffered_socket(broker: EmbeddedBroker) -> None:
    collector = _Collector(broker, "buffered-probe")
    try:
        assert isinstance(collector.client, BufferedClient)
        assert isinstance(collector.client.socket(), BufferedSocket)  # paho still calls _create_socket
    finally:
        close_client(collector.client)


def test_a_burst_arrives_complete_and_in_order_with_and_without_properties(
    broker: EmbeddedBroker, publisher: mqtt.Client
) -> None:
    collector = _Collector(broker, "buffered-burst")
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = ("source", "ems")
    props.ContentType = "application/json"
    expected: list[tuple[str, bytes, int, bool]] = []
    for i in range(3_000):
        topic, payload, qos = f"t/site-{i % 7}/meter", f'{{"i": {i}}}'.encode(), i % 2
        with_props = i % 10 == 0  # these take paho's own decoder; the rest the fast path
        publisher.publish(topic, payload, qos=qos, properties=props if with_props else None)
        expected.append((topic, payload, qos, with_props))
    big = bytes(range(256)) * 800  # 200 KiB: several kernel reads for one packet
    publisher.publish("t/big", big, qos=1)
    try:
        wait_for(collector.count, lambda n: n >= 3_001, timeout_s=30)
        assert collector.count() == 3_001
        got = [m for m in collector.messages if m.topic != "t/big"]
        (big_message,) = [m for m in collector.messages if m.topic == "t/big"]
        # MQTT orders messages within a QoS level only (paho holds QoS 1 back beyond its inflight cap).
        for qos in (0, 1):
            assert [(m.topic, m.payload) for m in got if m.qos == qos] == [
                (t, p) for t, p, q, _ in expected if q == qos
            ]
        props_by_payload = {p: with_props for _, p, _, with_props in expected}
        for message in got:
            assert isinstance(message.payload, bytes)
            if props_by_payload[message.payload]:
                assert message.properties is not None
                # paho sets these attributes dynamically, from the packet (its stubs do not declare them)
                assert getattr(message.properties, "UserProperty", None) == [("source", "ems")]
                assert getattr(message.properties, "ContentType", None) == "application/json"
            else:
                assert message.properties is NO_PROPERTIES  # decoded on the fast path
        assert big_message.payload == big
        assert all(not m.retain and not m.dup for m in got)
    finally:
        close_client(collector.client)


def test_unacknowledged_messages_come_back_after_a_reconnect(broker: EmbeddedBroker, publisher: mqtt.Client) -> None:
    first = _Collector(broker, "buffered-manual", manual_ack=True)
    for i in range(10):
        publisher.publish("t/manual", str(i).encode(), qos=1)
    wait_for(first.count, lambda n: n == 10)
    for message in first.messages[:4]:
        first.client.ack(message.mid, message.qos)  # the acks travel through the held write buffer
    close_client(first.client)  # DISCONNECT follows the acks out of the same buffer, in order

    again = _Collector(broker, "buffered-manual", manual_ack=True)
    try:
        wait_for(again.count, lambda n: n >= 6, timeout_s=15)
        assert sorted(m.payload for m in again.messages) == [str(i).encode() for i in range(4, 10)]
        assert all(m.dup for m in again.messages)
    finally:
        close_client(again.client)


def test_a_buffered_publisher_gets_every_puback(broker: EmbeddedBroker) -> None:
    collector = _Collector(broker, "buffered-sink")
    acked = 0
    lock = threading.Lock()

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1

    client = make_client("buffered-publisher", buffered=True, max_inflight=0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        for i in range(5_000):
            client.publish("t/pub", i.to_bytes(4, "big"), qos=1)
        wait_for(lambda: acked, lambda n: n == 5_000, timeout_s=30)
        wait_for(collector.count, lambda n: n == 5_000, timeout_s=30)
        assert [int.from_bytes(m.payload, "big") for m in collector.messages] == list(range(5_000))
    finally:
        close_client(client)
        close_client(collector.client)
