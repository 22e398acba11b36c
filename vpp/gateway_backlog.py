"""A site gateway's side of the end-to-end confirmation (docs/DESIGN.md section 3, "Delivery levels"), without I/O.

A gateway keeps every reading it sent until the platform confirms it on `vpp/v1/{site}/stored`,
and sends the unconfirmed ones again after any reconnect and when they have waited too long.
QoS 1 only says the broker has a message; a broker that crashes before it saved its queue, or
loses its disk, loses it. The confirmation comes from ingest after the reading is committed to
PostgreSQL, so a confirmed reading is durable and an unconfirmed one is resent (storage keeps one
row per device and instant, so a resend is harmless).

The backlog is bounded: beyond `max_readings` the oldest unconfirmed readings are given up (and
counted), so a platform that is away for days cannot exhaust the gateway's memory.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["ConfirmationBacklog", "Pending"]

Key = tuple[str, str, datetime]  # site, device, instant (aware datetimes compare as instants)


@dataclass(frozen=True)
class Pending:
    site_id: str
    device_id: str
    readings: list[Mapping[str, Any]]


class ConfirmationBacklog:
    """Readings sent but not yet confirmed stored, oldest first. Thread-safe (paho calls `confirm`
    from its network thread while the gateway's loop adds and resends)."""

    def __init__(self, max_readings: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_readings < 1:
            raise ValueError("the backlog must hold at least one reading")
        self.max_readings = max_readings
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[Key, tuple[Mapping[str, Any], float]] = OrderedDict()
        self.confirmed = 0
        self.given_up = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, site_id: str, device_id: str, reading: Mapping[str, Any]) -> None:
        """Remember a reading as sent now (a JSON reading with an RFC 3339 `ts`)."""
        key = (site_id, device_id, datetime.fromisoformat(str(reading["ts"])))
        with self._lock:
            self._items[key] = (reading, self._clock())
            self._items.move_to_end(key)
            while len(self._items) > self.max_readings:
                self._items.popitem(last=False)
                self.given_up += 1

    def confirm(self, site_id: str, payload: bytes) -> int:
        """Forget what a `stored` message confirms; returns how many readings it released.

        Anything unreadable is ignored: a confirmation can only release readings, so the worst a
        bad one can do is cause resends."""
        try:
            body = json.loads(payload)
            stored = body["stored"]
            keys = [
                (site_id, str(device), datetime.fromisoformat(ts)) for device, stamps in stored.items() for ts in stamps
            ]
        except (ValueError, TypeError, KeyError, AttributeError):
            return 0
        released = 0
        with self._lock:
            for key in keys:
                if self._items.pop(key, None) is not None:
                    released += 1
            self.confirmed += released
        return released

    def due(self, *, older_than_s: float = 0.0, per_message: int = 60) -> list[Pending]:
        """Unconfirmed readings sent at least `older_than_s` ago, grouped per device into messages
        of at most `per_message` readings, and marked as sent again now."""
        now = self._clock()
        groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
        with self._lock:
            for key, (reading, sent_at) in list(self._items.items()):
                if now - sent_at < older_than_s:
                    continue
                groups.setdefault(key[:2], []).append(reading)
                self._items[key] = (reading, now)
        return [
            Pending(site, device, readings[i : i + per_message])
            for (site, device), readings in groups.items()
            for i in range(0, len(readings), per_message)
        ]
