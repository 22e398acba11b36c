"""Whether a client is still active, checked against the database at most every few seconds.

Tokens outlive a revocation by design of JWTs; re-checking the client behind a token (cached
briefly so a busy client costs one query per interval, not per request) makes `vpp clients revoke`
take effect within seconds instead of at token expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from vpp.postgres.api_clients import client_is_active

__all__ = ["ClientStatus"]


class ClientStatus:
    def __init__(self, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._known: dict[str, tuple[bool, float]] = {}

    async def is_active(self, engine: AsyncEngine, client_id: str) -> bool:
        # A connection of its own, returned at once: a request must not hold a pooled connection
        # while it waits for a report another request is computing (the pool would run dry).
        now_s = self._clock()
        known = self._known.get(client_id)
        if known is not None and now_s - known[1] < self.ttl_s:
            return known[0]
        async with engine.connect() as conn:
            active = await client_is_active(conn, client_id)
        self._known[client_id] = (active, now_s)
        return active
