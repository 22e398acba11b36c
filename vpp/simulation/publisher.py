"""Publishes simulated sites over MQTT the way site gateways do: QoS 1, one message per device per step.

One connection can carry every simulated site (Python cannot hold 20,000 paho clients in one process),
which only a broker without roles accepts. With a single site it behaves exactly like a gateway: its
own account, a retained `online` status and a Last Will of `offline`; `vpp.simulation.fleet` runs one
such publisher per site, with the site's EMS on the same connection.

It keeps every reading until the platform confirms it stored (`vpp/v1/{site}/stored`, see
`vpp.gateway_backlog`), in a bounded backlog, and sends the unconfirmed ones again after any
reconnect and when they have waited `resend_after_s`.

Given several independent brokers it is connected to one at a time and moves to the next when that
one is lost (`vpp.mqtt.BrokerFailover`); the move is a reconnect like any other, so everything
unconfirmed goes to the new broker, including what the old one PUBACKed and took with it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from vpp.gateway_backlog import ConfirmationBacklog
from vpp.mqtt import (
    STORED_TOPIC,
    BrokerAddress,
    BrokerFailover,
    close_client,
    make_client,
    session_properties,
    status_topic,
    stored_topic,
    telemetry_topic,
)
from vpp.simulation.model import SiteSimulator

__all__ = ["MessageHandler", "SimulationPublisher"]

MessageHandler = Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]


class SimulationPublisher:
    def __init__(
        self,
        simulators: Sequence[SiteSimulator],
        broker: BrokerAddress | Sequence[BrokerAddress],
        *,
        client_id: str = "vpp-simulator",
        username: str | None = None,
        password: str | None = None,
        batch_per_site: bool = False,
        backlog_max_readings: int = 100_000,
        resend_after_s: float = 30.0,
        reconnect_min_s: float = 1.0,
        handlers: Mapping[str, MessageHandler] | None = None,
    ) -> None:
        """`handlers`: further topic filters this connection subscribes to, each with the paho callback
        its messages go to (a site's EMS reading its DR signal over the gateway's own connection)."""
        brokers = [broker] if isinstance(broker, BrokerAddress) else list(broker)
        broker = brokers[0]
        self.simulators = list(simulators)
        self.batch_per_site = batch_per_site
        self.backlog = ConfirmationBacklog(backlog_max_readings)
        self.resend_after_s = resend_after_s
        self.resent = 0
        self._connects = 0
        self._resend_due = threading.Event()
        self.subscribed = threading.Event()  # the broker answered the first SUBSCRIBE
        self._handlers = dict(handlers or {})
        self.published = 0
        self._pending = 0  # published in the current step/backfill, not yet counted in `published`
        self._acked = 0
        self._cond = threading.Condition()
        self.client = make_client(
            client_id,
            mqtt5=broker.mqtt5,
            username=username,
            password=password,
            tls=broker.tls,
            max_inflight=0,  # MAX_UNACKED bounds what is outstanding
            reconnect_min_s=reconnect_min_s,
        )
        if len(self.simulators) == 1:
            site_id = self.simulators[0].spec.site_id
            self.client.will_set(status_topic(site_id), b"offline", qos=1, retain=True)
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        for topic, handler in self._handlers.items():
            # Before connecting: a retained message may arrive with the SUBACK.
            self.client.message_callback_add(topic, handler)
        self.failover: BrokerFailover | None = None
        if len(brokers) > 1:
            # Not connected yet when this returns: readings queue (and stay in the backlog) meanwhile.
            self.failover = BrokerFailover(
                self.client, brokers, keepalive=30, clean_start=False, properties=session_properties()
            )
            self.failover.start()
            return
        if broker.mqtt5:
            self.client.connect(
                broker.host, broker.port, keepalive=30, clean_start=False, properties=session_properties()
            )
        else:
            self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            # One site subscribes to its own confirmations (all a site's ACL allows); a fleet on one
            # connection, which only a broker without roles accepts (`vpp simulate`), to everyone's.
            if len(self.simulators) == 1:
                topics = [stored_topic(self.simulators[0].spec.site_id), *self._handlers]
            else:
                topics = [STORED_TOPIC.format(site_id="+"), *self._handlers]
            client.subscribe([(topic, 1) for topic in topics])
            self._connects += 1
            if self._connects > 1:
                # Whatever the broker held for us may be gone (a crash, a lost disk): resend all that
                # is unconfirmed, from the caller's thread (publishing here could wait on our own acks).
                self._resend_due.set()
            for sim in self.simulators[:1000]:  # status for a fleet of thousands would only be noise
                client.publish(status_topic(sim.spec.site_id), b"online", qos=1, retain=True)
                self.published += 1

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        if len(parts) == 4 and parts[3] == "stored":
            self.backlog.confirm(parts[2], bytes(message.payload))

    def resend_unconfirmed(self, *, all_now: bool = False) -> int:
        """Send again what the platform has not confirmed: everything after a reconnect (or when
        `all_now`), otherwise what has waited `resend_after_s`. Returns messages sent."""
        everything = all_now or self._resend_due.is_set()
        self._resend_due.clear()
        sent = 0
        for pending in self.backlog.due(older_than_s=0.0 if everything else self.resend_after_s):
            self._publish(
                telemetry_topic(pending.site_id, pending.device_id), json.dumps({"readings": pending.readings})
            )
            sent += 1
        with self._cond:
            self._pending -= sent
            self.published += sent
        self.resent += sent
        return sent

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()

    @property
    def acked(self) -> int:
        return self._acked

    # paho keys unacknowledged messages by packet id, which wraps at 65,536: with more in flight a new
    # message silently replaces an old one. Waiting below this bound keeps every message accounted for.
    MAX_UNACKED = 20_000

    def _publish(self, topic: str, payload: str) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self.published + self._pending - self._acked < self.MAX_UNACKED, 60)
            self._pending += 1
        self.client.publish(topic, payload, qos=1)

    def step(self, now: datetime) -> int:
        """Advance every site to `now` and publish its readings; returns messages published."""
        self.resend_unconfirmed()
        sent = 0
        for sim in self.simulators:
            readings = sim.step(now)
            site_id = sim.spec.site_id
            for device_id, payload in readings.items():
                self.backlog.add(site_id, device_id, payload)
                self._publish(telemetry_topic(site_id, device_id), json.dumps(payload))
                sent += 1
        with self._cond:
            self._pending -= sent
            self.published += sent
        return sent

    def backfill(
        self,
        start: datetime,
        end: datetime,
        step_s: int,
        per_message: int = 60,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Publish history from `start` to `end` as batch messages, as a gateway sends its backlog."""
        from datetime import timedelta

        pending: dict[tuple[str, str], list[dict[str, object]]] = {}
        sent = 0
        now = start
        while now <= end:
            for sim in self.simulators:
                for device_id, payload in sim.step(now).items():
                    key = (sim.spec.site_id, device_id)
                    pending.setdefault(key, []).append(payload)
                    if len(pending[key]) >= per_message:
                        sent += self._flush(key, pending.pop(key))
            if progress:
                progress(step_s)
            now += timedelta(seconds=step_s)
        for key, readings in pending.items():
            sent += self._flush(key, readings)
        with self._cond:
            self._pending -= sent
            self.published += sent
        return sent

    def _flush(self, key: tuple[str, str], readings: list[dict[str, object]]) -> int:
        for reading in readings:
            self.backlog.add(*key, reading)
        self._publish(telemetry_topic(*key), json.dumps({"readings": readings}))
        return 1

    def wait_acked(self, timeout_s: float = 60.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._acked >= self.published, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Say `offline` for every site and wait up to `timeout_s` for the broker's PUBACKs, then disconnect."""
        for sim in self.simulators[:1000]:
            self.client.publish(status_topic(sim.spec.site_id), b"offline", qos=1, retain=True)
            self.published += 1
        self.wait_acked(timeout_s)
        if self.failover is not None:
            self.failover.stop()
        else:
            close_client(self.client)
