"""Per-client token buckets: how `city` clients are held to their request rate.

In-process on purpose: each API process limits on its own, so behind N processes a client gets up
to N times the rate. Good enough to stop a runaway script; a shared limiter can come with scale-out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter"]


@dataclass
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    """Allow `per_minute` requests per key on average, in bursts of up to `per_minute`."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_s = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        # Keys are client ids and addresses an attacker can make up: bound how many are held.
        self.max_keys = 100_000

    def _prune(self, now_s: float) -> None:
        """Forget buckets that have refilled (they would behave exactly like a new one), else the oldest half."""
        full_after_s = self.capacity / self.refill_per_s
        kept = {k: b for k, b in self._buckets.items() if now_s - b.updated_s < full_after_s}
        if len(kept) >= self.max_keys:
            kept = dict(sorted(kept.items(), key=lambda kv: kv[1].updated_s)[len(kept) // 2 :])
        self._buckets = kept

    def peek(self, key: str) -> float:
        """Like `acquire` without taking a token: the seconds to wait, or 0.0."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.capacity, bucket.tokens + (self._clock() - bucket.updated_s) * self.refill_per_s)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.refill_per_s

    def acquire(self, key: str) -> float:
        """Take one token for `key`: 0.0 when allowed, else the seconds to wait before retrying."""
        now_s = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now_s)
            bucket = self._buckets[key] = _Bucket(self.capacity, now_s)
        bucket.tokens = min(self.capacity, bucket.tokens + (now_s - bucket.updated_s) * self.refill_per_s)
        bucket.updated_s = now_s
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.refill_per_s

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
