"""The OpenADR 3.1 MQTT notifier binding: which topics hear of a change, and the publisher.

Fan-out (`mqtt_fan_out`) runs in the webhook outbox's transaction (`services.api.openadr.outbox`),
so each change becomes webhook deliveries and MQTT messages together or not at all. A change is
published to business logic's topics in full, and to the topics of every VEN client that could read
the object over REST, as that client reads it (targets not granted to it hidden): the same payload
and the same privacy rules as a webhook notification (`services.api.openadr.notify`). Topic names:
`vpp.domain.openadr_mqtt`.

`MqttNotifier` publishes the queued messages at QoS 1 and deletes each once the broker's PUBACK
accepted it; while the broker is away (or refuses), messages stay queued and are retried with
back-off, and the moment the connection returns they are all due again. At least once: a PUBACK
lost to a disconnect means the message is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.api.openadr.access import TARGETED, ReadView
from services.api.openadr.wire import to_wire
from vpp.domain.openadr_mqtt import bl_topics, ven_topics
from vpp.mqtt import close_client, make_client, parse_broker_url
from vpp.postgres.openadr import fetch_client
from vpp.postgres.openadr_mqtt import (
    MqttMessage,
    NewMqttMessage,
    claim_mqtt_messages,
    insert_mqtt_messages,
    mqtt_due_now,
    mqtt_published,
    mqtt_release,
    mqtt_retry_later,
    mqtt_stats,
    ven_clients,
)
from vpp.postgres.openadr_outbox import Change

__all__ = ["MqttMetrics", "MqttNotifier", "MqttPublisher", "insert_mqtt_messages", "mqtt_fan_out"]

_log = logging.getLogger(__name__)
_BATCH = 200
_STATS_EVERY_S = 2.0


def _program_of(change: Change) -> str | None:
    value = change.obj.columns.get("program_id")
    return str(value) if value is not None else None


async def mqtt_fan_out(conn: AsyncConnection, change: Change) -> list[NewMqttMessage]:
    """The MQTT messages one change makes: business logic's topics, then each entitled VEN's."""
    obj, operation = change.obj, change.operation
    object_type = obj.kind.object_type

    def message(granted: frozenset[str] | None) -> dict[str, Any]:
        return {"objectType": object_type, "operation": operation, "object": to_wire(obj, granted=granted)}

    full = message(None)
    out = [
        NewMqttMessage(change.id, topic, full, change.created_at)
        for topic in bl_topics(object_type, operation, obj.id, _program_of(change))
    ]
    if object_type in ("VEN", "RESOURCE"):
        # The VEN's own objects: on its own topics, for an active VEN client that may read them.
        ven_id = obj.id if object_type == "VEN" else str(obj.columns.get("ven_id") or "")
        client = await fetch_client(conn, obj.client_id)
        if ven_id and client is not None and client.role == "ven" and "read_ven_objects" in client.scopes:
            out += [
                NewMqttMessage(change.id, topic, full, change.created_at)
                for topic in ven_topics(object_type, operation, obj.client_id, ven_id)
            ]
    elif object_type in TARGETED:
        for ven in await ven_clients(conn):
            if not {"read_targets", "read_all"} & ven.scopes:
                continue
            view = ReadView(all=True) if "read_all" in ven.scopes else ReadView(all=False, granted=ven.granted)
            if not view.sees(obj):
                continue
            seen = message(view.hide)
            out += [
                NewMqttMessage(change.id, topic, seen, change.created_at)
                for ven_id in ven.ven_ids
                for topic in ven_topics(object_type, operation, ven.client_id, ven_id)
            ]
    return out


@dataclass(frozen=True, slots=True)
class Published:
    ok: bool
    reason: str = ""


def _resolve(future: asyncio.Future[Published], result: Published) -> None:
    if not future.done():  # a timed-out wait has cancelled it
        future.set_result(result)


class MqttPublisher:
    """One paho client (its own network thread) publishing at QoS 1; `publish` awaits the PUBACK."""

    def __init__(self, url: str, username: str, password: str, *, ack_timeout_s: float = 10.0) -> None:
        address = parse_broker_url(url)
        self.ack_timeout_s = ack_timeout_s
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[Published]]] = {}
        self._early: dict[int, Published] = {}  # PUBACKs that beat the registration of their mid
        self._abandoned: set[int] = set()
        self.connected = threading.Event()
        self.on_reconnect: list[Any] = []
        # The broker takes the username as the client id (use_username_as_clientid); send the same.
        self.client = make_client(username, mqtt5=address.mqtt5, username=username, password=password, tls=address.tls)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._address = address

    def start(self) -> None:
        # connect_async: an absent broker at start-up is an outage like any other, retried by paho.
        self.client.connect_async(self._address.host, self._address.port, keepalive=30)
        self.client.loop_start()

    def close(self) -> None:
        close_client(self.client)

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            _log.warning("OpenADR MQTT notifier refused by the broker", extra={"reason": str(rc)})
            return
        self.connected.set()
        for callback in self.on_reconnect:
            callback()

    def _on_disconnect(self, *_args: Any) -> None:
        self.connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, rc: Any, _p: Any) -> None:
        result = Published(True) if not rc.is_failure else Published(False, f"broker refused: {rc}")
        with self._lock:
            if mid in self._abandoned:
                self._abandoned.discard(mid)
                return
            waiting = self._waiting.pop(mid, None)
            if waiting is None:
                self._early[mid] = result
                return
        loop, future = waiting
        loop.call_soon_threadsafe(_resolve, future, result)

    async def publish(self, topic: str, payload: bytes) -> Published:
        if not self.connected.is_set():
            return Published(False, "broker not connected")
        info = self.client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return Published(False, f"publish failed: {mqtt.error_string(info.rc)}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Published] = loop.create_future()
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is not None:
                return early
            self._waiting[info.mid] = (loop, future)
        try:
            return await asyncio.wait_for(future, self.ack_timeout_s)
        except TimeoutError:
            with self._lock:
                if self._waiting.pop(info.mid, None) is not None:
                    self._abandoned.add(info.mid)
            return Published(False, "no PUBACK in time")


class MqttMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "vpp_openadr_mqtt_notifications",
            "OpenADR MQTT notification publications by this process (published: PUBACK received)",
            ["outcome"],
            registry=registry,
        )
        self.pending = Gauge(
            "vpp_openadr_mqtt_notifications_pending", "OpenADR MQTT notifications not yet published", registry=registry
        )
        self.oldest_age_s = Gauge(
            "vpp_openadr_mqtt_notifications_oldest_pending_seconds",
            "Age of the oldest OpenADR MQTT notification not yet published",
            registry=registry,
        )
        self.connected = Gauge(
            "vpp_openadr_mqtt_connected",
            "1 while this API process is connected to the notifier broker",
            registry=registry,
        )


class MqttNotifier:
    def __init__(
        self,
        engine: AsyncEngine,
        publisher: MqttPublisher,
        metrics: MqttMetrics,
        *,
        poll_s: float,
        first_delay_s: float,
        max_delay_s: float,
    ) -> None:
        self.engine = engine
        self.publisher = publisher
        self.metrics = metrics
        self.poll_s = poll_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[int] = set()
        self._reconnected = threading.Event()
        self._last_stats = 0.0
        # The outbox's fan-out (set by `OutboxLoop`): run here too, so a webhook receiver that is slow to
        # answer the outbox loop's POSTs does not hold MQTT notifications back.
        self.fan_out: Callable[[], Awaitable[int]] | None = None

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        def reconnected() -> None:  # paho's thread
            self._reconnected.set()
            loop.call_soon_threadsafe(self._wake.set)

        self.publisher.on_reconnect.append(reconnected)
        self.publisher.start()
        self._task = loop.create_task(self._run(), name="openadr-mqtt-notifier")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._in_flight:
            async with self.engine.begin() as conn:
                await mqtt_release(conn, sorted(self._in_flight))
            self._in_flight.clear()
        self.publisher.close()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                busy = await self.run_once()
                failures = 0
            except Exception:  # a database hiccup must not end publishing for good
                failures += 1
                _log.exception("OpenADR MQTT notifier round failed; retrying", extra={"failures": failures})
                busy = False
            if not busy:
                wait_s = min(self.poll_s * 2**failures, max(self.poll_s, 5.0))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait_s)
                self._wake.clear()

    async def run_once(self) -> bool:
        """One round; True when there may be more work right away."""
        fanned_out = await self.fan_out() if self.fan_out is not None else 0
        if self._reconnected.is_set():
            self._reconnected.clear()
            # Back from an outage: everything that failed meanwhile is due now, not after its back-off.
            async with self.engine.begin() as conn:
                await mqtt_due_now(conn)
        due: list[MqttMessage] = []
        if self.publisher.connected.is_set():
            async with self.engine.begin() as conn:
                due = await claim_mqtt_messages(conn, _BATCH, self.publisher.ack_timeout_s + 10)
        if due:
            self._in_flight.update(m.id for m in due)
            results = await asyncio.gather(
                *(self.publisher.publish(m.topic, json.dumps(m.message).encode()) for m in due)
            )
            await self._record(due, results)
        await self._refresh_metrics()
        return len(due) == _BATCH or fanned_out > 0

    async def _record(self, due: list[MqttMessage], results: list[Published]) -> None:
        done = [m.id for m, r in zip(due, results, strict=True) if r.ok]
        async with self.engine.begin() as conn:
            if done:
                await mqtt_published(conn, done)
            for message, result in zip(due, results, strict=True):
                if not result.ok:
                    delay_s = min(self.first_delay_s * 2 ** (message.attempts - 1), self.max_delay_s)
                    await mqtt_retry_later(conn, message.id, delay_s, result.reason)
        self.metrics.notifications.labels("published").inc(len(done))
        if len(done) < len(due):
            self.metrics.notifications.labels("retry").inc(len(due) - len(done))
            _log.warning(
                "OpenADR MQTT notifications not published; retrying",
                extra={"count": len(due) - len(done), "reason": next(r.reason for r in results if not r.ok)},
            )
        self._in_flight.difference_update(m.id for m in due)

    async def _refresh_metrics(self) -> None:
        now_s = time.monotonic()
        if now_s - self._last_stats < _STATS_EVERY_S:
            return
        self._last_stats = now_s
        async with self.engine.connect() as conn:
            stats = await mqtt_stats(conn)
        self.metrics.pending.set(stats.pending)
        self.metrics.oldest_age_s.set(stats.oldest_pending_age_s)
        self.metrics.connected.set(1 if self.publisher.connected.is_set() else 0)
