"""A simulated site's EMS on the MQTT side: it obeys DR signals and acknowledges them.

Used by `vpp up` and the tests, so the loop operator → scheduler → broker → site → telemetry can be
watched end to end. Signals arrive on paho's network thread; the simulator is stepped by another thread,
so signals are queued here and applied by :meth:`SiteEmsLink.apply_pending` between steps.

With further brokers (`more_brokers`) it moves to the next when its broker is lost and subscribes
there: the retained signal on the new broker is its current state (the scheduler keeps every broker's
retained signals current), so a signal issued while its first broker is dead still reaches it.

Without a broker address the link has no connection of its own: its `on_message` is handed to the
site gateway's connection (`vpp.simulation.fleet`), because a broker that binds the client id to the
username lets one site account hold only one connection.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from vpp.domain.dr_events import DrAck, DrSignal, ack_payload, parse_signal
from vpp.log import kv
from vpp.mqtt import BrokerAddress, BrokerFailover, close_client, dr_ack_topic, dr_signal_topic, make_client
from vpp.simulation.model import SiteSimulator

log = logging.getLogger("vpp.simulation.ems")


class SiteEmsLink:
    def __init__(
        self,
        sim: SiteSimulator,
        host: str | None = None,
        port: int = 1883,
        *,
        mqtt5: bool = True,
        username: str | None = None,
        password: str | None = None,
        more_brokers: Sequence[BrokerAddress] = (),
        reconnect_min_s: float = 1.0,
    ) -> None:
        self.sim = sim
        self.site_id = sim.spec.site_id
        self.pending: queue.Queue[DrSignal] = queue.Queue()
        self.received: list[DrSignal] = []
        self.subscribed = threading.Event()
        self.client: mqtt.Client | None = None
        self.failover: BrokerFailover | None = None
        if host is None:
            return
        self.client = make_client(
            f"ems-{self.site_id}", mqtt5=mqtt5, username=username, password=password, reconnect_min_s=reconnect_min_s
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.on_message = self.on_message
        if more_brokers:
            first = BrokerAddress(host, port, mqtt5=mqtt5)
            self.failover = BrokerFailover(self.client, [first, *more_brokers], keepalive=10)
            self.failover.start()
            return
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, _reason: Any, _p: Any) -> None:
        client.subscribe(dr_signal_topic(self.site_id), qos=1)

    def on_message(self, client: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        """A DR signal: queue it for the simulator and acknowledge it on the connection it came by."""
        if not message.payload:
            return  # a cleared retained signal: nothing to obey
        try:
            signal = parse_signal(bytes(message.payload))
        except ValueError:
            # A real EMS ignores what it cannot read rather than act on a guess; it has no event id to refuse.
            log.warning("unreadable DR signal", extra=kv(site=self.site_id, topic=message.topic))
            return
        self.received.append(signal)
        self.pending.put(signal)
        ack = DrAck(signal.event_id, signal.revision, accepted=True, ts=datetime.now(UTC))
        client.publish(dr_ack_topic(self.site_id), ack_payload(ack), qos=1)

    def apply_pending(self) -> int:
        """Apply queued signals to the simulator's EMS; returns how many were applied.

        Each signal is the site's whole DR state (merged events), so the newest replaces the rest."""
        applied = 0
        while True:
            try:
                signal = self.pending.get_nowait()
            except queue.Empty:
                return applied
            self.sim.apply_signal(signal)
            applied += 1

    def close(self) -> None:
        if self.failover is not None:
            self.failover.stop()
        elif self.client is not None:
            close_client(self.client)
