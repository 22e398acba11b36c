"""A database connection checked out of the pool only if the request turns out to need one.

A repeated report answered from the cache needs no database at all; not checking out a pooled
connection (and not resetting it on return) is most of what makes that path cheap.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = ["LazyConnection"]


class LazyConnection:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def get(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()
