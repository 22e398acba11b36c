"""The MQTT side of ingest: a persistent-session subscriber that never acknowledges on its own.

paho's manual-ack mode leaves every QoS 1 message unacknowledged until the batch holding it is
committed; if the process dies first, the broker redelivers to the same session when it comes back.
A reconnect invalidates packet ids, so acks are tagged with the connection generation they belong
to and stale ones are dropped (the broker redelivers those messages, and the duplicate insert is
ignored).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from vpp.mqtt import STATUS_FILTER, TELEMETRY_FILTER, BrokerAddress, close_client, make_client, session_properties

from .batcher import Inbound

__all__ = ["Subscriber"]

log = logging.getLogger("vpp.ingest.subscriber")


class Subscriber:
    def __init__(
        self,
        broker: BrokerAddress,
        *,
        client_id: str,
        share_group: str,
        username: str | None,
        password: str | None,
        receive_maximum: int,
        inbox: queue.SimpleQueue[Inbound],
        on_received: Callable[[], None] = lambda: None,
        on_connection_change: Callable[[bool], None] = lambda _connected: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.broker = broker
        self.share_group = share_group
        self.receive_maximum = receive_maximum
        self.inbox = inbox
        self._on_received = on_received
        self._on_connection_change = on_connection_change
        self._clock = clock
        self._generation = 0
        self._lock = threading.Lock()
        # Set once the broker has granted the subscriptions (SUBACK). A publisher that starts before
        # this can lose messages: a QoS 1 message that matches no subscription yet is acked and dropped.
        self.subscribed = threading.Event()
        self.client = make_client(
            client_id,
            mqtt5=broker.mqtt5,
            username=username,
            password=password,
            manual_ack=True,
            tls=broker.tls,
            # Mosquitto 2.0 does not restore shared subscriptions from its persistence file: after a
            # broker restart, messages match nobody until ingest resubscribes. Reconnecting within
            # 100 ms (sites back off for a second or more) closes that window in practice.
            reconnect_min_s=0.1,
            buffered=True,
        )
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_message = self._handle_message
        self.client.on_subscribe = self._handle_subscribe

    @property
    def telemetry_filter(self) -> str:
        # Shared subscriptions split the stream across workers; a 3.1.1-only broker has none, and an
        # empty group gives a single worker a plain subscription that the broker persists fully.
        if self.broker.mqtt5 and self.share_group:
            return f"$share/{self.share_group}/{TELEMETRY_FILTER}"
        return TELEMETRY_FILTER

    def start(self) -> None:
        if self.broker.mqtt5:
            self.client.connect_async(
                self.broker.host,
                self.broker.port,
                keepalive=30,
                clean_start=False,
                properties=session_properties(self.receive_maximum),
            )
        else:
            self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        close_client(self.client)

    def ack(self, messages: Sequence[Inbound]) -> int:
        """Acknowledge committed messages of the current connection; returns how many were acked."""
        with self._lock:
            generation = self._generation
        acked = 0
        for message in messages:
            if message.qos > 0 and message.generation == generation:
                self.client.ack(message.mid, message.qos)
                acked += 1
        return acked

    def _handle_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection", extra={"reason": str(reason)})
            return
        if self.broker.mqtt5:
            options = SubscribeOptions(qos=1)
            client.subscribe([(self.telemetry_filter, options), (STATUS_FILTER, SubscribeOptions(qos=1))])
        else:
            client.subscribe([(self.telemetry_filter, 1), (STATUS_FILTER, 1)])
        self._on_connection_change(True)
        log.info("connected to broker", extra={"host": self.broker.host, "port": self.broker.port})

    def _handle_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self._generation += 1
        self.subscribed.clear()
        self._on_connection_change(False)
        log.warning("disconnected from broker", extra={"reason": str(reason)})

    def _handle_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            # An ACL that does not grant the ingest account its filters: nothing will arrive, say why.
            log.error("broker refused the subscription", extra={"reasons": refused})
            return
        self.subscribed.set()

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.inbox.put(
            Inbound(message.topic, bytes(message.payload), self._clock(), message.mid, message.qos, self._generation)
        )
        self._on_received()
