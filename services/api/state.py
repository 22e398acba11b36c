"""What one API process holds between requests: settings, the engine, caches and metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.cache import ReportCache
from services.api.client_status import ClientStatus
from services.api.login_throttle import LoginThrottle
from services.api.metrics import ApiMetrics
from services.api.ratelimit import RateLimiter
from services.api.region_versions import RegionVersions
from services.api.token_cache import TokenCache
from vpp.settings import Settings

__all__ = ["AppState"]


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    cache: ReportCache
    city_limiter: RateLimiter
    client_status: ClientStatus
    region_versions: RegionVersions
    tokens: TokenCache = field(default_factory=TokenCache)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    login_throttle: LoginThrottle = field(default_factory=lambda: LoginThrottle(10, 30))
