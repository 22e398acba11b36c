"""The gateway publisher's confirmation hook: with end-to-end confirmation, only `confirmed` empties the backlog."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from services.gateway.backlog import Backlog
from services.gateway.publisher import GatewayPublisher
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress, close_client, make_client

pytestmark = pytest.mark.integration


def test_unconfirmed_messages_are_resent_after_a_reconnect_and_kept_until_confirmed(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    received: list[bytes] = []
    lock = threading.Lock()
    watcher = make_client("confirm-watcher")
    watcher.on_connect = lambda c, *_: c.subscribe("vpp/v1/site-c/+/telemetry", qos=1)

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with lock:
            received.append(bytes(message.payload))

    watcher.on_message = on_message
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    backlog = Backlog(tmp_path / "backlog.sqlite3")
    publisher = GatewayPublisher("site-c", BrokerAddress("127.0.0.1", broker.port), backlog, lambda _s: None,
                                 confirm_on_puback=False, reconnect_min_s=0.2)  # fmt: skip
    try:
        assert publisher.connected_event.wait(10)
        seqs = [publisher.enqueue("vpp/v1/site-c/meter-1/telemetry", {"ts": f"t{n}", "n": n}) for n in range(3)]
        wait_for(lambda: len(received), lambda n: n == 3)
        assert backlog.size() == 3, "a PUBACK alone does not confirm at this delivery level"
        publisher.client.reconnect()  # the next connection resends everything still unconfirmed
        wait_for(lambda: len(received), lambda n: n == 6)
        publisher.confirmed(seqs[:2])  # the platform reports the first two stored
        assert [p.seq for p in backlog.pending()] == seqs[2:]
        publisher.client.reconnect()
        wait_for(lambda: len(received), lambda n: n == 7)
        with lock:
            assert received[-1] == b'{"ts":"t2","n":2}'
    finally:
        publisher.close()
        backlog.close()
        close_client(watcher)
