"""MQTT side of the scheduler: publish retained DR signals, receive acknowledgements.

Signals go out QoS 1 and retained on ``vpp/v1/{site}/dr/signal``, so a site that reconnects (or boots)
gets its current plan at once. :meth:`Dispatcher.publish` waits for the broker's PUBACK with a timeout:
a signal counts as dispatched only when a broker holds it. Acks on ``vpp/v1/+/dr/ack`` are queued for
the scheduler's loop, which owns the database connection; paho's network thread never touches it.

Several independent brokers (README "Broker redundancy"): one client per broker, and every signal goes
to every connected broker; it counts as dispatched once one of them holds it, so a dead broker does not
stop dispatch. The dispatcher remembers each site's newest signal (by its ``issued_at``) and reads
every broker's retained signals back (``vpp/v1/+/dr/signal``, with No Local so its own publishes do not
echo): a broker that comes back (after a restart that lost or rolled back its retained messages, or
after missing signals while it was down) is given the newest signal of every site it lacks or holds an
older one of, a settle time after it granted the subscription. Because the newest signal always wins
and is learned from any broker, a scheduler that restarts, or a second instance, converges on the same
state instead of needing a memory of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from vpp.domain.dr_events import parse_signal
from vpp.log import kv
from vpp.mqtt import BrokerAddress, close_client, dr_signal_topic, make_client

from .metrics import SchedulerMetrics

__all__ = ["ACK_FILTER", "SIGNAL_FILTER", "Dispatcher", "InboundAck", "SignalNotDelivered"]

log = logging.getLogger("vpp.dr_scheduler.dispatch")

ACK_FILTER = "vpp/v1/+/dr/ack"
SIGNAL_FILTER = "vpp/v1/+/dr/signal"


class SignalNotDelivered(RuntimeError):  # noqa: N818 - reads as what happened
    """No broker acknowledged a signal in time; the event stays in its previous state."""


@dataclass(frozen=True)
class InboundAck:
    site_id: str
    payload: bytes


@dataclass
class _Link:
    """One broker: its client, and what it was seen to hold since it last connected."""

    broker: BrokerAddress
    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    signal_sub_mid: int | None = None
    held: dict[str, bytes] = field(default_factory=dict)  # site -> retained payload seen since connecting
    republished: int = 0


def _issued_at(payload: bytes) -> datetime | None:
    try:
        return parse_signal(payload).issued_at
    except ValueError:
        return None


class Dispatcher:
    def __init__(
        self,
        broker: BrokerAddress | Sequence[BrokerAddress],
        metrics: SchedulerMetrics,
        *,
        client_id: str = "dr-scheduler",
        username: str | None = None,
        password: str | None = None,
        publish_timeout_s: float = 10.0,
        resync_settle_s: float = 1.0,
        client_factory: Callable[[BrokerAddress], mqtt.Client] | None = None,
    ) -> None:
        """One paho client per broker; a test passes `client_factory` (fakes.FakeBroker.client_factory)."""
        brokers = [broker] if isinstance(broker, BrokerAddress) else list(dict.fromkeys(broker))
        if not brokers:
            raise ValueError("the dispatcher needs at least one broker")
        self.broker = brokers[0]
        self.metrics = metrics
        self.publish_timeout_s = publish_timeout_s
        # How long after the SUBACK a reconnected broker's retained signals are taken as all delivered.
        self.resync_settle_s = resync_settle_s
        self.acks: queue.Queue[InboundAck] = queue.Queue()
        self.connected = threading.Event()  # set while at least one broker is connected
        self._lock = threading.Lock()
        self._newest: dict[str, tuple[datetime, bytes]] = {}  # site -> newest signal known, from any source
        self.links: list[_Link] = []
        new_client = client_factory or (
            lambda b: make_client(client_id, mqtt5=b.mqtt5, username=username, password=password, tls=b.tls)
        )
        for b in brokers:
            client = new_client(b)
            link = _Link(b, client)
            client.on_connect = self._bind(self._on_connect, link)
            client.on_disconnect = self._bind(self._on_disconnect, link)
            client.on_message = self._bind(self._on_message, link)
            client.on_subscribe = self._bind(self._on_subscribe, link)
            self.links.append(link)
        self.client = self.links[0].client

    @staticmethod
    def _bind(method: Any, link: _Link) -> Any:
        return lambda *args: method(link, *args)

    def start(self) -> None:
        # Clean session: acks missed while down are not worth replaying; the retained signal is the state.
        for link in self.links:
            link.client.connect_async(link.broker.host, link.broker.port, keepalive=30)
            link.client.loop_start()

    def stop(self) -> None:
        for link in self.links:
            close_client(link.client)

    def all_connected(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(link.connected.wait(max(deadline - time.monotonic(), 0.0)) for link in self.links)

    def _update_connected(self) -> None:
        up = sum(1 for link in self.links if link.connected.is_set())
        self.metrics.connected.set(up)
        if up:
            self.connected.set()
        else:
            self.connected.clear()

    def _on_connect(self, link: _Link, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused connection", extra=kv(reason=str(reason), host=link.broker.host))
            return
        with self._lock:
            link.held = {}
        # Again on every reconnect. No Local: the scheduler's own publishes need not come back to it.
        if link.broker.mqtt5:
            _rc, link.signal_sub_mid = client.subscribe(
                [(ACK_FILTER, SubscribeOptions(qos=1)), (SIGNAL_FILTER, SubscribeOptions(qos=1, noLocal=True))]
            )
        else:
            _rc, link.signal_sub_mid = client.subscribe([(ACK_FILTER, 1), (SIGNAL_FILTER, 1)])
        link.connected.set()
        self._update_connected()
        log.info("connected to broker", extra=kv(host=link.broker.host, port=link.broker.port))

    def _on_disconnect(self, link: _Link, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        link.connected.clear()
        self._update_connected()
        log.warning("disconnected from broker", extra=kv(reason=str(reason), host=link.broker.host))

    def _on_subscribe(self, link: _Link, _c: mqtt.Client, _u: Any, mid: int, _reasons: Any, _p: Any) -> None:
        if mid != link.signal_sub_mid:
            return
        # The broker sends its retained signals right after the SUBACK; give them a moment to arrive,
        # then fill in what it lacks. On a timer thread: paho's network thread must keep reading them.
        timer = threading.Timer(self.resync_settle_s, self._resync, args=(link,))
        timer.daemon = True
        timer.start()

    def _resync(self, link: _Link) -> None:
        """Give a (re)connected broker every site's newest signal it does not hold."""
        if not link.connected.is_set():
            return
        with self._lock:
            missing = [
                (site, payload) for site, (_at, payload) in self._newest.items() if link.held.get(site) != payload
            ]
        for site_id, payload in missing:
            self._republish(link, site_id, payload)
        if missing:
            log.info(
                "republished retained DR signals to a broker",
                extra=kv(host=link.broker.host, port=link.broker.port, signals=len(missing)),
            )

    def _republish(self, link: _Link, site_id: str, payload: bytes) -> None:
        link.client.publish(dr_signal_topic(site_id), payload, qos=1, retain=True)
        with self._lock:
            link.held[site_id] = payload
            link.republished += 1

    def _on_message(self, link: _Link, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        if len(parts) == 5 and parts[3:] == ["dr", "ack"]:
            self.acks.put(InboundAck(parts[2], bytes(message.payload)))
        elif len(parts) == 5 and parts[3:] == ["dr", "signal"] and message.payload:
            self._signal_seen(link, parts[2], bytes(message.payload))

    def _signal_seen(self, link: _Link, site_id: str, payload: bytes) -> None:
        """A broker holds this signal: learn it if it is newer than ours, correct the broker if older."""
        issued_at = _issued_at(payload)
        if issued_at is None:
            return  # not ours to judge; a site cannot write here (ACL), so it is a foreign format
        with self._lock:
            link.held[site_id] = payload
            known = self._newest.get(site_id)
            if known is None or issued_at > known[0]:
                self._newest[site_id] = (issued_at, payload)
                others = [o for o in self.links if o is not link and o.connected.is_set()]
                correct_here = None
            else:
                others = []
                correct_here = known[1] if known[1] != payload else None
        for other in others:  # another instance (or a previous life of this one) issued it
            if other.held.get(site_id) != payload:
                self._republish(other, site_id, payload)
        if correct_here is not None:  # a broker back from a crash with an older signal
            self._republish(link, site_id, correct_here)

    def publish(self, site_id: str, payload: bytes, status: str) -> None:
        """Publish a site's signal (retained, QoS 1) to every broker; return once one of them holds it."""
        issued_at = _issued_at(payload)
        # Recorded before publishing, so that a broker connecting meanwhile is given it by its resync;
        # put back if no broker takes it: an undelivered signal must not reach sites later that way.
        with self._lock:
            previous = self._newest.get(site_id)
            if issued_at is not None and (previous is None or issued_at >= previous[0]):
                self._newest[site_id] = (issued_at, payload)
        try:
            self._publish_everywhere(site_id, payload)
        except SignalNotDelivered:
            with self._lock:
                if self._newest.get(site_id, (None, b""))[1] == payload:
                    if previous is None:
                        self._newest.pop(site_id, None)
                    else:
                        self._newest[site_id] = previous
            raise
        self.metrics.signals.labels(status).inc()
        log.info("signal published", extra=kv(site_id=site_id, status=status, bytes=len(payload)))

    def _publish_everywhere(self, site_id: str, payload: bytes) -> None:
        """To every connected broker; returns when one has PUBACKed, else SignalNotDelivered."""
        if not self.connected.wait(self.publish_timeout_s):
            self.metrics.publish_failures.inc()
            raise SignalNotDelivered(f"signal for {site_id} not published: no broker connected")
        sent: list[tuple[_Link, mqtt.MQTTMessageInfo]] = []
        for link in self.links:
            # A broker that is down now gets this signal when it is back (_resync), not from paho's queue,
            # which could deliver it after a newer one.
            if link.connected.is_set():
                sent.append((link, link.client.publish(dr_signal_topic(site_id), payload, qos=1, retain=True)))
                with self._lock:
                    link.held[site_id] = payload
        deadline = time.monotonic() + self.publish_timeout_s
        while True:
            if any(self._published(info) for _link, info in sent):
                break
            if time.monotonic() > deadline:
                self.metrics.publish_failures.inc()
                raise SignalNotDelivered(
                    f"no broker acknowledged the signal for {site_id} in {self.publish_timeout_s} s"
                )
            time.sleep(0.005)

    @staticmethod
    def _published(info: mqtt.MQTTMessageInfo) -> bool:
        try:
            return info.is_published()
        except (RuntimeError, ValueError):  # paho raises these when the queue or connection failed
            return False
