"""The gateway's MQTT side: telemetry from the on-disk backlog, the DR signal in, acks out.

Every telemetry message goes to the :class:`~services.gateway.backlog.Backlog` first and is published
from there by one sender thread, at most ``window`` unconfirmed at a time. A message leaves the backlog
only through :meth:`GatewayPublisher.confirmed`, the single confirmation hook, called either on the
broker's PUBACK (``confirm_on_puback=True``, delivery level "QoS 1", DESIGN.md section 3) or, the
default, from the platform's end-to-end confirmation: ingest publishes on `vpp/v1/{site}/stored`,
after each commit, the (device, timestamp) of every reading it stored (README "End-to-end
confirmation"); the publisher maps those to backlog sequence numbers and confirms them. A PUBACK
then only frees a place in the window.

After any reconnect everything unconfirmed is sent again, oldest first; ingest ignores duplicates
(same device and timestamp). A message PUBACKed but not confirmed within ``resend_after_s`` is sent
again too (the broker may have lost it, or ingest's session; a QoS 0 confirmation may have been
lost), each further time after twice as long, up to ``_RESEND_MAX_S``: a reading ingest rejected is
never confirmed, and must not be resent forever at full rate until the backlog's bound lets it go.

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
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt

from services.gateway.backlog import Backlog, Key, Pending
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

__all__ = ["GatewayPublisher", "reading_key"]

log = logging.getLogger("vpp.gateway.publisher")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RESEND_MAX_S = 600.0


def reading_key(device_id: str, ts: object) -> Key | None:
    """(device, instant in µs): how a reading is matched to a confirmation. Instants, not text: the
    platform may confirm ``...05.000+09:00`` as ``...20:00:05Z``. None for a missing or naive time."""
    try:
        instant = datetime.fromisoformat(str(ts))
    except ValueError:
        return None
    if instant.tzinfo is None:
        return None
    return device_id, (instant - _EPOCH) // timedelta(microseconds=1)


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
        confirm_on_puback: bool = False,
        resend_after_s: float = 30.0,
        reconnect_min_s: float = 1.0,
    ) -> None:
        brokers = [broker] if isinstance(broker, BrokerAddress) else list(broker)
        broker = brokers[0]
        self.site_id = site_id
        self.backlog = backlog
        self.window = window
        self.confirm_on_puback = confirm_on_puback
        self.resend_after_s = resend_after_s
        self._on_signal = on_signal
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._connected = False
        self._generation = 0  # counts connections; the sender restarts from the oldest on each
        self.inflight = 0
        self.enqueued = 0
        self.confirmations = 0  # stored messages received
        self.confirmed_count = 0  # backlog messages they released
        self.resent = 0  # messages sent again because no confirmation came in time (not reconnects)
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
        parts = topic.split("/")
        key = reading_key(parts[3], body.get("ts")) if len(parts) > 3 else None
        seq = self.backlog.append(topic, json.dumps(body, separators=(",", ":")).encode(), key)
        self.enqueued += 1
        self._wake.set()
        return seq

    def confirmed(self, seqs: list[int]) -> None:
        """THE confirmation hook: the platform (or, at delivery level QoS 1, the broker) has these."""
        self.backlog.confirm(seqs)

    def _on_stored(self, payload: bytes) -> None:
        """Map the platform's confirmation (device → timestamps) to sequence numbers and confirm them.

        Anything unreadable is ignored: a confirmation can only release readings, so the worst a bad
        one can do is cause resends."""
        try:
            stored = json.loads(payload)["stored"]
            keys = [reading_key(str(device), ts) for device, stamps in stored.items() for ts in stamps]
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("unreadable stored confirmation", extra=kv(site=self.site_id))
            return
        # A set: one batch may hold a reading and its resend, both reported stored.
        seqs = self.backlog.seqs_for(sorted({k for k in keys if k is not None}))
        self.confirmations += 1
        self.confirmed_count += len(seqs)
        self.confirmed(seqs)

    def _send_loop(self) -> None:
        # Only this thread touches inflight, sent_upto and sent_at. Completion is read from paho's
        # message infos rather than mapped from on_publish's mid: paho reuses mids and resends its own
        # in-flight messages after a reconnect, so a mid alone could confirm the wrong message.
        inflight: list[tuple[int, mqtt.MQTTMessageInfo]] = []
        sent_upto = 0
        seen_generation = 0
        sent_at: dict[int, tuple[float, int]] = {}  # seq -> (last sent, times sent) this connection
        next_check = 0.0
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
                inflight, sent_upto, seen_generation, sent_at = [], 0, generation, {}
            room = self.window - len(inflight)
            if room <= 0:
                continue
            now = time.monotonic()
            batch = []
            if not self.confirm_on_puback and now >= next_check:
                next_check = now + min(1.0, self.resend_after_s / 4)
                batch = self._overdue(sent_upto, sent_at, {seq for seq, _ in inflight}, now, room)
                self.resent += len(batch)
            fresh = self.backlog.pending(sent_upto, limit=room - len(batch))
            for item in batch + fresh:
                info = self.client.publish(item.topic, item.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break  # the connection dropped under us; the next connection starts over
                inflight.append((item.seq, info))
                sent_upto = max(sent_upto, item.seq)
                if not self.confirm_on_puback:
                    sent_at[item.seq] = (now, sent_at.get(item.seq, (now, 0))[1] + 1)
            self.inflight = len(inflight)

    def _overdue(
        self, sent_upto: int, sent_at: dict[int, tuple[float, int]], inflight: set[int], now: float, room: int
    ) -> list[Pending]:
        """Messages sent on this connection, PUBACKed, and still unconfirmed past their resend time."""
        held = self.backlog.pending_seqs(sent_upto)
        for seq in set(sent_at) - set(held):  # confirmed (or dropped by the bound) since: forget
            del sent_at[seq]
        due = []
        for seq in held:
            if seq in inflight or seq not in sent_at:
                continue
            last, times = sent_at[seq]
            if now - last >= min(self.resend_after_s * 2 ** (times - 1), _RESEND_MAX_S):
                due.append(seq)
                if len(due) >= room:
                    break
        return self.backlog.get(due)

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _reason: Any, _p: Any) -> None:
        self._wake.set()

    # -- connection --------------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.warning("broker refused the gateway", extra=kv(site=self.site_id, reason=str(reason)))
            return
        client.publish(status_topic(self.site_id), b"online", qos=1, retain=True)
        client.subscribe(dr_signal_topic(self.site_id), qos=1)
        if not self.confirm_on_puback:
            # Before the sender may publish: the broker handles one connection's packets in order, so
            # no confirmation of a resent reading can arrive before this subscription is in place.
            client.subscribe(stored_topic(self.site_id), qos=1)
        with self._lock:
            self._connected = True
            self._generation += 1
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
            self._on_stored(bytes(message.payload))
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
