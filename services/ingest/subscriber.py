"""The MQTT side of ingest: a persistent-session subscriber that never acknowledges on its own.

paho's manual-ack mode leaves every QoS 1 message unacknowledged until the batch holding it is
committed; if the process dies first, the broker redelivers to the same session when it comes back.
A reconnect invalidates packet ids, so acks are tagged with the connection generation they belong
to and stale ones are dropped (the broker redelivers those messages, and the duplicate insert is
ignored).

Several workers, no window: by default every worker holds a plain (non-shared) subscription in its
own persistent session and keeps only the sites hashed to its partition (`site_partition`),
acknowledging the others at once. Mosquitto restores plain subscriptions of persistent sessions
from its persistence file on a restart, so the subscription is in place the moment the broker
accepts publishers again, and it queues for a worker that is down. Mosquitto 2.0 does not restore
`$share` subscriptions: with a share group (optional, for brokers that do, such as EMQX) messages
published after a broker restart and before ingest resubscribes match nobody and are dropped.

After each commit the worker publishes what it stored on the site's `stored` topic (`confirm`):
the end-to-end confirmation that lets a gateway forget a reading (docs/DESIGN.md section 3, "Delivery levels").
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from vpp.mqtt import (
    MISFIT_FILTERS,
    STATUS_FILTER,
    TELEMETRY_FILTER,
    BrokerAddress,
    close_client,
    make_client,
    session_properties,
    site_partition,
    stored_topic,
)

from .batcher import Inbound

__all__ = ["MessageSubscriber", "Subscriber", "confirmation_messages"]

log = logging.getLogger("vpp.ingest.subscriber")


class MessageSubscriber(Protocol):
    """What the worker needs of a broker subscription: :class:`Subscriber`, or fakes.FakeSubscriber in a test.

    Built with Subscriber's keyword arguments; it puts each message into `inbox` as an :class:`Inbound`.
    """

    source: int
    connected: bool
    subscribed: threading.Event

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def ack(self, messages: Sequence[Inbound]) -> int: ...

    def confirm(self, messages: Sequence[tuple[str, bytes]]) -> int: ...


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
        partition: int = 0,
        partitions: int = 1,
        source: int = 0,
    ) -> None:
        if not 0 <= partition < partitions:
            raise ValueError(f"ingest partition {partition} is not in 0..{partitions - 1}")
        self.broker = broker
        self.source = source  # this broker's index among the worker's brokers, carried by each Inbound
        self.connected = False
        self.share_group = share_group
        self.partition = partition
        # A shared subscription already splits the stream; partitions split a plain one.
        self.partitions = 1 if self.shared else partitions
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
            # Back within 100 ms of a broker restart: the broker queues for the session meanwhile, but
            # the sooner ingest drains that queue the sooner sites see their readings confirmed.
            reconnect_min_s=0.1,
            buffered=True,
        )
        self.client.on_connect = self._handle_connect
        self.client.on_disconnect = self._handle_disconnect
        self.client.on_message = self._handle_message
        self.client.on_subscribe = self._handle_subscribe

    @property
    def shared(self) -> bool:
        # A 3.1.1-only broker has no shared subscriptions.
        return bool(self.broker.mqtt5 and self.share_group)

    @property
    def telemetry_filter(self) -> str:
        return f"$share/{self.share_group}/{TELEMETRY_FILTER}" if self.shared else TELEMETRY_FILTER

    @property
    def filters(self) -> list[str]:
        """Telemetry and status first (required), then the catch-alls for misfit topics (optional)."""
        misfits = [f"$share/{self.share_group}/{f}" if self.shared else f for f in MISFIT_FILTERS]
        return [self.telemetry_filter, STATUS_FILTER, *misfits]

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
        # Subscribing again on every connect is harmless when the broker restored the session.
        if self.broker.mqtt5:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.filters])
        else:
            client.subscribe([(f, 1) for f in self.filters])
        self.connected = True
        self._on_connection_change(True)
        log.info("connected to broker", extra={"host": self.broker.host, "port": self.broker.port})

    def _handle_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self._generation += 1
        self.subscribed.clear()
        self.connected = False
        self._on_connection_change(False)
        log.warning(
            "disconnected from broker",
            extra={"reason": str(reason), "host": self.broker.host, "port": self.broker.port},
        )

    def _handle_subscribe(self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any) -> None:
        refused = [(f, str(r)) for f, r in zip(self.filters, reasons, strict=False) if r.is_failure]
        if any(f in (self.telemetry_filter, STATUS_FILTER) for f, _r in refused):
            # An ACL that does not grant the ingest account its filters: nothing will arrive, say why.
            log.error("broker refused the subscription", extra={"reasons": refused})
            return
        if refused:  # misfit topics then vanish at the broker, as they did before
            log.warning("broker refused the catch-all subscriptions for misfit topics", extra={"reasons": refused})
        self.subscribed.set()

    def confirm(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Publish the confirmations `confirmation_messages` built; returns messages published.

        Call only after the commit. QoS 0: a confirmation that is lost (the gateway offline, a broker
        restart) only makes the gateway resend, and storage ignores the repeat; QoS 1 would add a
        PUBACK per site and batch to ingest's busiest thread.
        """
        for topic, payload in messages:
            self.client.publish(topic, payload, qos=0)
        return len(messages)

    def _handle_message(self, client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self.partitions > 1 and site_partition(message.topic, self.partitions) != self.partition:
            # Another worker's site: its own session got the same message. Drop it here at once.
            if message.qos > 0:
                client.ack(message.mid, message.qos)
            return
        self.inbox.put(
            Inbound(
                message.topic,
                bytes(message.payload),
                self._clock(),
                message.mid,
                message.qos,
                self._generation,
                self.source,
            )
        )
        self._on_received()


def confirmation_messages(stored: Mapping[str, Mapping[str, Sequence[str]]]) -> list[tuple[str, bytes]]:
    """One `vpp/v1/{site}/stored` message per site: what a committed batch stored (DESIGN 3.4)."""
    return [
        (stored_topic(site_id), json.dumps({"v": 1, "stored": devices}, separators=(",", ":")).encode())
        for site_id, devices in stored.items()
    ]
