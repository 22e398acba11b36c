"""The gateway's MQTT side: telemetry from the on-disk backlog, the DR signal in, acks out.

Every telemetry message goes to the :class:`~services.gateway.backlog.Backlog` first and is published
from there by one sender thread, at most ``window`` unconfirmed at a time. A message leaves the backlog
only through :meth:`GatewayPublisher.confirmed`, the single confirmation hook. Today it is called on
the broker's PUBACK (delivery level "QoS 1", DESIGN.md section 3); with the platform's end-to-end
stored-confirmation topic it is called from that topic's handler instead: with ``confirm_on_puback``
False the publisher subscribes to ``vpp/v1/{site}/stored`` and confirms a message once every reading
in it has been reported stored (:class:`StoredTracker`; :meth:`confirmed` may still be called too).
After any reconnect everything unconfirmed is sent again, oldest first, and so is everything once
nothing was confirmed for ``resend_after_s``; ingest ignores duplicates (same device and timestamp).

Given several independent brokers (``broker`` as a list) it is connected to one at a time and moves to
the next when that one is lost (`vpp.mqtt.BrokerFailover`): the move is a reconnect like any other, so
everything unconfirmed is sent to the new broker.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt

from services.gateway.backlog import Backlog
from vpp.domain.dr_events import DrAck, DrSignal, ack_payload, parse_signal
from vpp.log import kv
from vpp.mqtt import (
    BrokerAddress,
    BrokerFailover,
    dr_ack_topic,
    dr_signal_topic,
    make_client,
    status_topic,
    stored_topic,
)

__all__ = ["GatewayPublisher", "StoredTracker"]

log = logging.getLogger("vpp.gateway.publisher")

Reading = tuple[str, datetime]  # device, instant (aware datetimes compare as instants)


class StoredTracker:
    """Which backlog messages the platform's `stored` confirmations complete.

    A message holds one reading or a batch; it is complete once every reading in it was reported
    stored. A message whose readings cannot be read (no RFC 3339 ``ts``) is never completed here.
    Thread-safe: paho's thread confirms while the sender tracks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[Reading, set[int]] = {}  # a reading -> the messages holding it
        self._open: dict[int, set[Reading]] = {}  # a message -> its readings not yet reported stored

    def track(self, seq: int, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        try:
            body = json.loads(payload)
            readings = body["readings"] if isinstance(body, dict) and "readings" in body else [body]
            keys = {(parts[3], datetime.fromisoformat(str(r["ts"]))) for r in readings}
        except (ValueError, TypeError, KeyError, IndexError):
            return
        with self._lock:
            if seq in self._open or not keys:
                return  # a resend: already tracked
            self._open[seq] = keys
            for key in keys:
                self._waiting.setdefault(key, set()).add(seq)

    def stored(self, payload: bytes) -> list[int]:
        """The messages a `stored` confirmation completes (anything unreadable completes nothing)."""
        try:
            keys = [
                (str(device), datetime.fromisoformat(ts))
                for device, stamps in json.loads(payload)["stored"].items()
                for ts in stamps
            ]
        except (ValueError, TypeError, KeyError, AttributeError):
            return []
        done: list[int] = []
        with self._lock:
            for key in keys:
                for seq in self._waiting.pop(key, ()):
                    remaining = self._open.get(seq)
                    if remaining is None:
                        continue
                    remaining.discard(key)
                    if not remaining:
                        del self._open[seq]
                        done.append(seq)
        return done

    def forget(self, seqs: list[int]) -> None:
        """Messages confirmed another way (or dropped from the backlog)."""
        with self._lock:
            for seq in seqs:
                for key in self._open.pop(seq, ()):
                    holders = self._waiting.get(key)
                    if holders is not None:
                        holders.discard(seq)
                        if not holders:
                            del self._waiting[key]

    def __len__(self) -> int:
        with self._lock:
            return len(self._open)


class GatewayPublisher:
    def __init__(
        self,
        site_id: str,
        broker: BrokerAddress | Sequence[BrokerAddress],
        backlog: Backlog,
        on_signal: Callable[[DrSignal], None],
        *,
        username: str | None = None,
        password: str | None = None,
        window: int = 200,
        confirm_on_puback: bool = True,
        reconnect_min_s: float = 1.0,
        resend_after_s: float = 30.0,
    ) -> None:
        brokers = [broker] if isinstance(broker, BrokerAddress) else list(broker)
        broker = brokers[0]
        self.site_id = site_id
        self.backlog = backlog
        self.window = window
        self.confirm_on_puback = confirm_on_puback
        self.resend_after_s = resend_after_s
        self.tracker = StoredTracker()
        self._last_progress = time.monotonic()  # the last send or confirmation: drives the timed resend
        self._on_signal = on_signal
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = False
        self._generation = 0  # counts connections; the sender restarts from the oldest on each
        self.inflight = 0
        self.enqueued = 0
        self.connected_event = threading.Event()
        self.client = make_client(
            f"gateway-{site_id}",
            mqtt5=broker.mqtt5,
            username=username,
            password=password,
            tls=broker.tls,
            reconnect_min_s=reconnect_min_s,
            max_inflight=0,  # `window` caps what is outstanding (see vpp.mqtt.make_client)
        )
        self.client.will_set(status_topic(site_id), b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        # Asynchronous: the gateway starts (and keeps its backlog) even while no broker is reachable.
        self.failover = BrokerFailover(self.client, brokers, keepalive=15)
        self.failover.start()
        self._sender = threading.Thread(target=self._send_loop, name=f"gateway-sender-{site_id}", daemon=True)
        self._sender.start()

    # -- telemetry ---------------------------------------------------------------------------------
    def enqueue(self, topic: str, body: dict[str, Any]) -> int:
        seq = self.backlog.append(topic, json.dumps(body, separators=(",", ":")).encode())
        self.enqueued += 1
        self._wake.set()
        return seq

    def confirmed(self, seqs: list[int]) -> None:
        """THE confirmation hook: the platform (or, at delivery level QoS 1, the broker) has these."""
        self.backlog.confirm(seqs)
        self.tracker.forget(seqs)
        self._last_progress = time.monotonic()

    def _send_loop(self) -> None:
        # Only this thread touches _inflight and _sent_upto. Completion is read from paho's message
        # infos rather than mapped from on_publish's mid: paho reuses mids and resends its own
        # in-flight messages after a reconnect, so a mid alone could confirm the wrong message.
        inflight: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        sent_upto = 0
        seen_generation = 0
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            done = [seq for seq, info in inflight if info.is_published()]
            if done:
                inflight = [(seq, info) for seq, info in inflight if not info.is_published()]
                if self.confirm_on_puback:
                    self.confirmed(done)
            with self._lock:
                connected, generation = self._connected, self._generation
            if not connected:
                continue
            if generation != seen_generation:  # a new connection: resend everything unconfirmed
                inflight, sent_upto, seen_generation = [], 0, generation
            elif (
                not self.confirm_on_puback
                and not inflight
                and sent_upto
                and time.monotonic() - self._last_progress > self.resend_after_s
            ):  # delivered but never confirmed (a confirmation lost, a reading dropped): send it all again
                sent_upto = 0
                self._last_progress = time.monotonic()
            room = self.window - len(inflight)
            if room <= 0:
                continue
            for item in self.backlog.pending(sent_upto, limit=room):
                if not self.confirm_on_puback:  # before publishing: the confirmation may be quick
                    self.tracker.track(item.seq, item.topic, item.payload)
                info = self.client.publish(item.topic, item.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # the connection dropped under us; the next connection starts over
                inflight.append((item.seq, info))
                sent_upto = item.seq
                self._last_progress = time.monotonic()
            self.inflight = len(inflight)

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        self._wake.set()

    # -- connection --------------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the gateway", extra=kv(site=self.site_id, reason=str(reason)))
            return
        with self._lock:
            self._connected = True
            self._generation += 1
        client.publish(status_topic(self.site_id), b"online", qos=1, retain=True)
        client.subscribe(dr_signal_topic(self.site_id), qos=1)
        if not self.confirm_on_puback:
            client.subscribe(stored_topic(self.site_id), qos=1)
        log.info("gateway connected", extra=kv(site=self.site_id, backlog=self.backlog.size()))
        self.connected_event.set()
        self._wake.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self._connected = False
        self.connected_event.clear()
        if not self._stop.is_set():  # a shutdown's own disconnect is no news
            log.warning("gateway disconnected", extra=kv(site=self.site_id, reason=str(reason)))

    # -- DR ------------------------------------------------------------------------------------------
    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        if message.topic == stored_topic(self.site_id):
            done = self.tracker.stored(bytes(message.payload))
            if done:
                self.confirmed(done)
            return
        if not message.payload:
            return  # a cleared retained signal
        try:
            signal = parse_signal(bytes(message.payload))
        except ValueError as error:
            # No event id to refuse: log it, as the simulated EMS does, and keep the last good signal.
            log.warning("unreadable DR signal", extra=kv(site=self.site_id, error=str(error)))
            return
        self._on_signal(signal)

    def ack(self, ack: DrAck) -> None:
        """Publish a DR ack; paho queues it while offline (acks are state, not metered data)."""
        self.client.publish(dr_ack_topic(self.site_id), ack_payload(ack), qos=1)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._sender.join(5)
        if self._connected:
            self.client.publish(status_topic(self.site_id), b"offline", qos=1, retain=True).wait_for_publish(2)
        self.failover.stop()
