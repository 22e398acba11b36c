"""Failed token requests, counted per client id and per source address: guessing secrets gets slow.

A failure takes one token from both the client id's bucket and the address's; a request whose client
id or address has no token left is refused with 429 before its secret is checked (so an attacker
cannot tell a right guess from a throttled one). Successes cost nothing, so a client that knows its
secret is never held up by its own traffic. In-process, like the city limiter (services/api/ratelimit.py).

Unknown client ids are checked against a dummy hash, so they cost the same scrypt work as known ones
and the answer time does not tell which client ids exist.
"""

from __future__ import annotations

import asyncio
import secrets
from functools import cache

from services.api.ratelimit import RateLimiter
from vpp.postgres.api_clients import hash_secret, verify_secret

__all__ = ["LoginThrottle", "verify_or_waste"]


class LoginThrottle:
    def __init__(self, per_client_per_min: int, per_address_per_min: int) -> None:
        self.by_client = RateLimiter(per_client_per_min)
        self.by_address = RateLimiter(per_address_per_min)

    def wait_s(self, client_id: str, address: str) -> float:
        """Seconds until this client id and address may try again (0.0: go ahead)."""
        return max(self.by_client.peek(client_id), self.by_address.peek(address))

    def failed(self, client_id: str, address: str) -> None:
        self.by_client.acquire(client_id)
        self.by_address.acquire(address)


@cache
def _dummy_hash() -> str:
    return hash_secret(secrets.token_urlsafe(32))


async def verify_or_waste(secret: str, stored: str | None) -> bool:
    """`verify_secret` off the event loop; for an unknown client (`stored` None) the same work, then False."""
    if stored is None:
        await asyncio.to_thread(verify_secret, secret, _dummy_hash())
        return False
    return await asyncio.to_thread(verify_secret, secret, stored)
