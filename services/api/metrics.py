"""Prometheus metrics of the API. A registry per app keeps tests independent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["ApiMetrics"]


class _Deliveries(Protocol):
    @property
    def pending(self) -> int: ...

    delivered: int
    failed: int


@dataclass
class ApiMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # Labelled by route template, not raw path, so site ids cannot explode the label set.
        self.requests = Counter("vpp_api_requests", "HTTP requests answered", ["route", "status"], registry=r)
        self.latency_s = Histogram(
            "vpp_api_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.cache_hits = Counter("vpp_api_report_cache_hits", "Reports served from the cache", registry=r)
        self.cache_misses = Counter("vpp_api_report_cache_misses", "Reports computed", registry=r)
