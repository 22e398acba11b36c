"""The ingest worker's database side, as three small ports with their PostgreSQL adapters.

The worker's rules (acknowledge only after commit, retry a failed commit, confirm only what is stored)
do not depend on PostgreSQL; these ports are where a unit test puts the fakes of :mod:`.fakes` instead.
Every method may raise psycopg.Error, which is how the worker recognises an outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import psycopg

from vpp.domain.devices import DeviceRef
from vpp.postgres.connect import connect
from vpp.postgres.readings import DeadLetter, EncodedRows, ReadingWriter, StatusRow, WriteResult
from vpp.postgres.registry import load_devices, registered_any, registry_fingerprint, site_pk_by_id
from vpp.postgres.rollup import run_rollup

__all__ = [
    "BatchWriter",
    "PostgresRegistry",
    "PostgresRollup",
    "RegistrySource",
    "RollupRunner",
    "open_postgres_writer",
]


class BatchWriter(Protocol):
    """Writes one batch per transaction; returning is the commit (the caller's signal to acknowledge)."""

    @property
    def closed(self) -> bool: ...

    def write(
        self, rows: EncodedRows, dead_letters: Sequence[DeadLetter], statuses: Sequence[StatusRow]
    ) -> WriteResult: ...

    def close(self) -> None: ...

    def wait_until_replicated(self, timeout_s: float) -> bool:
        """Whether a standby has flushed everything committed so far (waiting at most `timeout_s`)."""
        ...


class RegistrySource(Protocol):
    """The registered sites and devices ingest validates against."""

    def fingerprint(self) -> str: ...

    def site_pks(self) -> dict[str, int]: ...

    def devices(self) -> dict[tuple[str, str], DeviceRef]: ...

    def registered_any(self, site_ids: Iterable[str], devices: Iterable[tuple[str, str]]) -> bool: ...

    def close(self) -> None: ...


class RollupRunner(Protocol):
    def run(self) -> tuple[bool, int]:
        """One claim of dirty slots: (whether it ran, device slots rolled up)."""
        ...

    def close(self) -> None: ...


def open_postgres_writer(database_url: str, client_id: str, max_gap_s: int) -> ReadingWriter:
    conn = connect(database_url, application_name=f"vpp-{client_id}")
    return ReadingWriter(conn, max_gap_s=max_gap_s)


class PostgresRegistry:
    """The registry on one autocommit connection, opened on first use and again after `close()`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._conn: psycopg.Connection | None = None

    def _connection(self) -> psycopg.Connection:
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._conn = connect(self.database_url, autocommit=True, application_name="vpp-ingest-registry")
        return conn

    def fingerprint(self) -> str:
        return registry_fingerprint(self._connection())

    def site_pks(self) -> dict[str, int]:
        return site_pk_by_id(self._connection())

    def devices(self) -> dict[tuple[str, str], DeviceRef]:
        return load_devices(self._connection())

    def registered_any(self, site_ids: Iterable[str], devices: Iterable[tuple[str, str]]) -> bool:
        return registered_any(self._connection(), site_ids, devices)

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None


class PostgresRollup:
    """The 30-minute rollup (vpp.postgres.rollup) on its own connection, reopened after `close()`."""

    def __init__(
        self, database_url: str, *, max_gap_s: int, delay_s: float, rated_power_factor: float, max_power_kw: float
    ) -> None:
        self.database_url = database_url
        self.max_gap_s = max_gap_s
        self.delay_s = delay_s
        self.rated_power_factor = rated_power_factor
        self.max_power_kw = max_power_kw
        self._conn: psycopg.Connection | None = None

    def run(self) -> tuple[bool, int]:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.database_url, application_name="vpp-rollup")
        result = run_rollup(
            self._conn,
            max_gap_s=self.max_gap_s,
            delay_s=self.delay_s,
            rated_power_factor=self.rated_power_factor,
            max_power_kw=self.max_power_kw,
        )
        return result.ran, result.device_slots

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
