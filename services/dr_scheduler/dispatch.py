"""MQTT side of the scheduler: publish retained DR signals, receive acknowledgements.

Signals go out QoS 1 and retained on ``vpp/v1/{site}/dr/signal``, so a site that reconnects (or boots)
gets its current plan at once. :meth:`Dispatcher.publish` waits for the broker's PUBACK with a timeout:
a signal counts as dispatched only when the broker holds it. Acks on ``vpp/v1/+/dr/ack`` are queued for
the scheduler's loop, which owns the database connection; paho's network thread never touches it.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from vpp.log import kv
from vpp.mqtt import BrokerAddress, dr_signal_topic, make_client

from .metrics import SchedulerMetrics

__all__ = ["ACK_FILTER", "Dispatcher", "InboundAck", "SignalNotDelivered"]

log = logging.getLogger("vpp.dr_scheduler.dispatch")

ACK_FILTER = "vpp/v1/+/dr/ack"


class SignalNotDelivered(RuntimeError):  # noqa: N818 - reads as what happened
    """The broker did not acknowledge a signal in time; the event stays in its previous state."""


@dataclass(frozen=True)
class InboundAck:
    site_id: str
    payload: bytes


class Dispatcher:
    def __init__(
        self,
        broker: BrokerAddress,
        metrics: SchedulerMetrics,
        *,
        client_id: str = "dr-scheduler",
        username: str | None = None,
        password: str | None = None,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self.broker = broker
        self.metrics = metrics
        self.publish_timeout_s = publish_timeout_s
        self.acks: queue.Queue[InboundAck] = queue.Queue()
        self.connected = threading.Event()
        self.client = make_client(client_id, mqtt5=broker.mqtt5, username=username, password=password, tls=broker.tls)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def start(self) -> None:
        # Clean session: acks missed while down are not worth replaying; the retained signal is the state.
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused connection", extra=kv(reason=str(reason)))
            return
        client.subscribe(ACK_FILTER, qos=1)  # again on every reconnect
        self.connected.set()
        self.metrics.connected.set(1)
        log.info("connected to broker", extra=kv(host=self.broker.host, port=self.broker.port))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connected.clear()
        self.metrics.connected.set(0)
        log.warning("disconnected from broker", extra=kv(reason=str(reason)))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        if len(parts) == 5 and parts[3:] == ["dr", "ack"]:
            self.acks.put(InboundAck(parts[2], bytes(message.payload)))

    def publish(self, site_id: str, payload: bytes, status: str) -> None:
        """Publish a site's signal (retained, QoS 1) and wait for the broker to hold it."""
        info = self.client.publish(dr_signal_topic(site_id), payload, qos=1, retain=True)
        try:
            info.wait_for_publish(self.publish_timeout_s)
        except (RuntimeError, ValueError) as error:  # paho raises these when the queue or connection fails
            self.metrics.publish_failures.inc()
            raise SignalNotDelivered(f"signal for {site_id} not published: {error}") from error
        if not info.is_published():
            self.metrics.publish_failures.inc()
            raise SignalNotDelivered(
                f"broker did not acknowledge the signal for {site_id} in {self.publish_timeout_s} s"
            )
        self.metrics.signals.labels(status).inc()
        log.info("signal published", extra=kv(site_id=site_id, status=status, bytes=len(payload)))
