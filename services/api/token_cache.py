"""Verified tokens remembered until they expire, so a busy client is not re-verified on every request."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.api.auth import Principal

__all__ = ["TokenCache"]


class TokenCache:
    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._tokens: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        entry = self._tokens.get(token)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._tokens[token]
            return None
        return entry[0]

    def put(self, token: str, principal: Principal, expires_s: float) -> None:
        if len(self._tokens) >= self.max_entries:
            self._tokens.clear()  # crude but bounded; a cleared cache only costs re-verification
        self._tokens[token] = (principal, expires_s)
