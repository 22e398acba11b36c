from __future__ import annotations

import asyncio

import pytest

from services.api.auth import Principal
from services.api.cache import CachedReport, ReportCache
from services.api.ratelimit import RateLimiter
from services.api.token_cache import TokenCache


def test_cache_serves_only_the_current_version() -> None:
    cache = ReportCache(10)
    cache.put("k", 1, CachedReport(b"old", 0))
    assert cache.get("k", 1) == CachedReport(b"old", 0)
    assert cache.get("k", 2) is None


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = ReportCache(2)
    cache.put("a", 1, CachedReport(b"a", 0))
    cache.put("b", 1, CachedReport(b"b", 0))
    cache.get("a", 1)
    cache.put("c", 1, CachedReport(b"c", 0))
    assert cache.get("b", 1) is None
    assert cache.get("a", 1) is not None
    assert len(cache) == 2


def test_concurrent_misses_compute_once() -> None:
    cache = ReportCache(10)
    calls = 0

    async def compute() -> CachedReport:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return CachedReport(b"r", 0)

    async def main() -> list[tuple[CachedReport, bool]]:
        return await asyncio.gather(*(cache.get_or_compute("k", 1, compute) for _ in range(20)))

    results = asyncio.run(main())
    assert calls == 1
    assert sum(computed for _, computed in results) == 1
    assert {r.body for r, _ in results} == {b"r"}


def test_a_failed_computation_is_not_cached() -> None:
    cache = ReportCache(10)

    async def boom() -> CachedReport:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        asyncio.run(cache.get_or_compute("k", 1, boom))
    assert cache.get("k", 1) is None


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, clock=lambda: now[0])
    assert limiter.acquire("c") == 0.0
    assert limiter.acquire("c") == 0.0
    wait_s = limiter.acquire("c")
    assert wait_s == pytest.approx(30.0)
    assert limiter.acquire("other") == 0.0
    now[0] = 30.0
    assert limiter.acquire("c") == 0.0
    assert RateLimiter.retry_after_header(0.2) == "1"


def test_token_cache_forgets_expired_tokens() -> None:
    now = [100.0]
    cache = TokenCache(clock=lambda: now[0])
    principal = Principal("c", "city")
    cache.put("t", principal, expires_s=150.0)
    assert cache.get("t") == principal
    now[0] = 150.0
    assert cache.get("t") is None
