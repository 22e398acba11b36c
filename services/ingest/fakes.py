"""In-memory stand-ins for the worker's adapters (database.py, subscriber.py), for unit tests of its rules.

Each fake records what happened in a shared `journal`, in order, so a test can say "the ack came after
the commit" by reading it. Nothing here opens a socket or touches a database.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from vpp.domain.devices import DeviceRef
from vpp.mqtt import BrokerAddress
from vpp.postgres.readings import DeadLetter, EncodedRows, StatusRow, WriteResult

from .batcher import Inbound

__all__ = ["FakeReadingStore", "FakeRegistry", "FakeRollup", "FakeSubscriber", "Journal"]


class Journal:
    """What the fakes did, in order: ("commit", n readings), ("ack", mids), ("confirm", topics), ..."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)

    def add(self, kind: str, what: Any) -> None:
        with self.changed:
            self.entries.append((kind, what))
            self.changed.notify_all()

    def kinds(self) -> list[str]:
        with self._lock:
            return [kind for kind, _ in self.entries]

    def wait_for(self, kind: str, count: int = 1, timeout_s: float = 5.0) -> bool:
        """Block until `count` entries of `kind` are in (woken by each entry: no polling sleeps)."""
        with self.changed:
            return self.changed.wait_for(lambda: sum(k == kind for k, _ in self.entries) >= count, timeout_s)

    def acked(self) -> list[int]:
        """Every message id acknowledged so far, in order."""
        with self._lock:
            return [mid for kind, mids in self.entries if kind == "ack" for mid in mids]

    def wait_acked(self, count: int, timeout_s: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(
                lambda: sum(len(mids) for kind, mids in self.entries if kind == "ack") >= count, timeout_s
            )


class FakeReadingStore:
    """The readings database: `open_writer` is the worker's `open_writer`; `fail_commits` make the next
    commits raise OperationalError (as a lost connection does) and nothing of those batches is stored."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.fail_commits = 0
        self.stored_rows = 0
        self.dead_letters: list[DeadLetter] = []
        self.opened = 0
        self.replicated = True  # False: no standby has the commits (a lone primary)
        self.commit_gate = threading.Event()  # cleared: commits hang until it is set (a server that stopped answering)
        self.commit_gate.set()

    def open_writer(self) -> _FakeWriter:
        self.opened += 1
        return _FakeWriter(self)


class _FakeWriter:
    def __init__(self, store: FakeReadingStore) -> None:
        self.store = store
        self.closed = False

    def write(
        self, rows: EncodedRows, dead_letters: Sequence[DeadLetter], statuses: Sequence[StatusRow]
    ) -> WriteResult:
        self.store.commit_gate.wait()
        if self.store.fail_commits > 0:
            self.store.fail_commits -= 1
            self.store.journal.add("failed commit", rows.count)
            raise psycopg.OperationalError("fake: connection lost during commit")
        self.store.stored_rows += rows.count
        self.store.dead_letters.extend(dead_letters)
        self.store.journal.add("commit", rows.count)
        return WriteResult(rows.count, rows.count, len(dead_letters))

    def close(self) -> None:
        self.closed = True

    def wait_until_replicated(self, timeout_s: float) -> bool:
        self.store.journal.add("replication check", int(self.store.replicated))
        return self.store.replicated


class FakeRegistry:
    """A fixed registry: {(site_id, device_id): DeviceRef}."""

    def __init__(self, devices: dict[tuple[str, str], DeviceRef]) -> None:
        self._devices = dict(devices)

    def fingerprint(self) -> str:
        return str(sorted(self._devices))

    def site_pks(self) -> dict[str, int]:
        return {site: ref.site_pk for (site, _device), ref in self._devices.items()}

    def devices(self) -> dict[tuple[str, str], DeviceRef]:
        return dict(self._devices)

    def registered_any(self, site_ids: Iterable[str], devices: Iterable[tuple[str, str]]) -> bool:
        sites = set(self.site_pks())
        return any(s in sites for s in site_ids) or any(d in self._devices for d in devices)

    def close(self) -> None:
        """Nothing to close: a fake holds no connection."""


class FakeRollup:
    def run(self) -> tuple[bool, int]:
        return False, 0

    def close(self) -> None:
        """Nothing to close: a fake holds no connection."""


class FakeSubscriber:
    """A broker subscription without a broker: `deliver` is a message arriving; acks and confirmations
    are journaled. Accepts the keyword arguments the worker gives :class:`.subscriber.Subscriber`; a test
    passes ``make_subscriber=functools.partial(FakeSubscriber, journal=journal)``."""

    def __init__(
        self,
        broker: BrokerAddress,
        *,
        inbox: queue.SimpleQueue[Inbound],
        source: int = 0,
        journal: Journal | None = None,
        **_: Any,
    ) -> None:
        self.broker = broker
        self.journal = journal
        self.inbox = inbox
        self.source = source
        self.connected = False
        self.subscribed = threading.Event()
        self.acked: list[int] = []
        self.confirmed: list[tuple[str, bytes]] = []
        self._mids = itertools.count(1)

    def start(self) -> None:
        self.connected = True
        self.subscribed.set()

    def stop(self) -> None:
        self.connected = False

    def deliver(self, topic: str, payload: bytes, qos: int = 1) -> int:
        """A message arrives from the broker; returns its message id."""
        mid = next(self._mids)
        self.inbox.put(Inbound(topic, payload, datetime.now(UTC), mid, qos, 0, self.source))
        return mid

    def ack(self, messages: Sequence[Inbound]) -> int:
        mids = [m.mid for m in messages if m.qos > 0]
        self.acked.extend(mids)
        if self.journal is not None:
            self.journal.add("ack", mids)
        return len(mids)

    def confirm(self, messages: Sequence[tuple[str, bytes]]) -> int:
        self.confirmed.extend(messages)
        if self.journal is not None:
            self.journal.add("confirm", [topic for topic, _ in messages])
        return len(messages)
