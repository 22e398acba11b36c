"""Region data versions kept in memory and current through PostgreSQL LISTEN/NOTIFY.

Every change to a region's data bumps its version in `region_data_version`, and the same
transaction sends ``'<region_pk>:<version>'`` on the `vpp_region_data` channel (migration 0002).
With a live listener a cached report is checked against memory only, so a repeated query costs no
database round trip. Whenever the listener is down the versions are read from the database on every
request instead: slower, never stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from vpp.postgres.connect import libpq_url
from vpp.postgres.reports import RegionRef, region_ref

__all__ = ["CHANNEL", "RegionVersions"]

CHANNEL = "vpp_region_data"
_log = logging.getLogger(__name__)


class RegionVersions:
    def __init__(self, database_url: str, reconnect_s: float = 1.0) -> None:
        self._dsn = libpq_url(database_url)
        self._reconnect_s = reconnect_s
        self._refs: dict[str, RegionRef] = {}
        # Every version announced, known region or not: a read racing a notification keeps the newer.
        self._announced: dict[int, int] = {}
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.live = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._keep_listening(), name="region-versions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def get(self, engine: AsyncEngine, region_id: str) -> RegionRef | None:
        """The region's key and current version, from memory when the listener is live."""
        if self.live:
            known = self._refs.get(region_id)
            if known is not None:
                return known
        # A short-lived connection, not the request's: see ClientStatus.is_active.
        async with engine.connect() as conn:
            ref = await region_ref(conn, region_id)
        if ref is not None and self.live:
            newest = max(ref.version, self._announced.get(ref.region_pk, 0))
            ref = RegionRef(ref.region_pk, ref.region_id, newest)
            self._refs[region_id] = ref
        return ref

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            pk_text, version_text = payload.split(":")
            region_pk, version = int(pk_text), int(version_text)
        except ValueError:
            _log.warning("ignoring malformed notification", extra={"payload": payload[:100]})
            return
        self._announced[region_pk] = max(version, self._announced.get(region_pk, 0))
        for region_id, ref in list(self._refs.items()):
            if ref.region_pk == region_pk and ref.version < version:
                self._refs[region_id] = RegionRef(region_pk, region_id, version)

    def _on_lost(self, _conn: object) -> None:
        self.live = False
        self._lost.set()

    async def _keep_listening(self) -> None:
        while True:
            try:
                self._lost.clear()
                self._conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "vpp-api-listen"})
                self._conn.add_termination_listener(self._on_lost)
                await self._conn.add_listener(CHANNEL, self._on_notify)
                # Forget what was learnt before: notifications may have been missed while down.
                self._refs.clear()
                self._announced.clear()
                self.live = True
                await self._lost.wait()
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                _log.warning("region version listener unavailable", extra={"error": repr(exc)})
            self.live = False
            await self._close()
            await asyncio.sleep(self._reconnect_s)

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
