"""What the soak test measures: ingest workers' Prometheus counters, scraped into per-window deltas.

Lag comes from the workers' own `vpp_ingest_lag_seconds` histogram (commit time minus the newest
reading timestamp of each message, observed after the batch commits). Scraping every worker each
second and differencing consecutive scrapes gives one histogram per window; quantiles are read from
the buckets by linear interpolation (as PromQL's `histogram_quantile` does), and whether p99 is under
2 s is exact, since 2 s is a bucket bound. A SIGKILLed worker's counters restart at zero: the
scraper is told, and the increments between its last scrape and the kill are lost to these
statistics (the database check at the end does not depend on them).
"""

from __future__ import annotations

import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "LAG_BOUNDS_S",
    "Fault",
    "Window",
    "WorkerCounters",
    "WorkerSample",
    "cumulative",
    "merge",
    "quantile_s",
    "recovery_s",
    "scrape",
    "share_within",
]

LAG_BOUNDS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)  # + the +Inf bucket


@dataclass(frozen=True)
class WorkerSample:
    lag_buckets: tuple[float, ...]  # cumulative counts, one per bound plus +Inf
    written: float
    duplicates: float
    rejected: float
    db_errors: float
    connected: bool


def scrape(port: int, timeout_s: float = 1.0) -> WorkerSample | None:
    """One worker's metrics, or None while its endpoint is down (killed, starting)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as response:
            text = response.read().decode()
    except OSError:
        return None
    values: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "vpp_ingest_lag_seconds_bucket":
                buckets[float(sample.labels["le"])] = sample.value
            else:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return WorkerSample(
        lag_buckets=tuple(buckets.get(bound, 0.0) for bound in (*LAG_BOUNDS_S, float("inf"))),
        written=values.get("vpp_ingest_readings_written_total", 0.0),
        duplicates=values.get("vpp_ingest_readings_duplicate_total", 0.0),
        rejected=values.get("vpp_ingest_messages_rejected_total", 0.0),
        db_errors=values.get("vpp_ingest_db_errors_total", 0.0),
        connected=values.get("vpp_ingest_broker_connected", 0.0) >= 1.0,
    )


_ZERO = WorkerSample((0.0,) * (len(LAG_BOUNDS_S) + 1), 0.0, 0.0, 0.0, 0.0, False)


@dataclass
class WorkerCounters:
    """Running totals of one worker slot across process restarts."""

    previous: WorkerSample = _ZERO
    lag_buckets: tuple[float, ...] = _ZERO.lag_buckets
    written: float = 0.0
    duplicates: float = 0.0
    rejected: float = 0.0
    db_errors: float = 0.0

    def restarted(self) -> None:
        self.previous = _ZERO

    def advance(self, sample: WorkerSample) -> WorkerSample:
        """Account for `sample`; returns the increments since the previous one."""
        before = self.previous
        if sample.written < before.written or sample.lag_buckets[-1] < before.lag_buckets[-1]:
            before = _ZERO  # the process restarted without our noticing
        delta = WorkerSample(
            tuple(now - then for now, then in zip(sample.lag_buckets, before.lag_buckets, strict=True)),
            sample.written - before.written,
            sample.duplicates - before.duplicates,
            sample.rejected - before.rejected,
            sample.db_errors - before.db_errors,
            sample.connected,
        )
        self.previous = sample
        self.lag_buckets = tuple(a + b for a, b in zip(self.lag_buckets, delta.lag_buckets, strict=True))
        self.written += delta.written
        self.duplicates += delta.duplicates
        self.rejected += delta.rejected
        self.db_errors += delta.db_errors
        return delta


@dataclass(frozen=True)
class Window:
    """One scrape period, ending `end_s` after the publisher's start (all workers summed)."""

    end_s: float
    length_s: float
    lag_buckets: tuple[float, ...]  # cumulative counts within this window
    written: float
    stored_total: float
    published_total: float  # readings the broker has acknowledged so far
    workers_up: int
    publish_delay_buckets: tuple[float, ...] = ()  # cumulative: newest reading measured -> broker PUBACK

    @property
    def start_s(self) -> float:
        return self.end_s - self.length_s

    @property
    def observations(self) -> float:
        return self.lag_buckets[-1]


def cumulative(counts: Sequence[float]) -> tuple[float, ...]:
    """Per-bucket counts to the cumulative form quantile_s reads."""
    out: list[float] = []
    running = 0.0
    for count in counts:
        running += count
        out.append(running)
    return tuple(out)


def merge(buckets: Sequence[Sequence[float]]) -> tuple[float, ...]:
    width = len(LAG_BOUNDS_S) + 1
    return tuple(sum(b[i] for b in buckets) for i in range(width))


def quantile_s(cumulative: Sequence[float], q: float) -> float | None:
    """The q-quantile of a cumulative histogram over LAG_BOUNDS_S, interpolated within its bucket."""
    total = cumulative[-1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip((*LAG_BOUNDS_S, float("inf")), cumulative, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower_bound  # beyond the last bound: report it as a floor
            span = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / span if span else 1.0)
        lower_bound, lower_count = bound, count
    return lower_bound


def share_within(cumulative: Sequence[float], bound_s: float) -> float | None:
    """Fraction of observations at or under `bound_s` (which must be a bucket bound)."""
    total = cumulative[-1]
    return cumulative[LAG_BOUNDS_S.index(bound_s)] / total if total > 0 else None


@dataclass
class Fault:
    name: str
    started_s: float
    restored_s: float | None = None  # when the service was back (process started, server listening)
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)


def recovery_s(
    windows: Sequence[Window], fault: Fault, target_s: float, *, published_at_restore: float | None
) -> tuple[float | None, float | None]:
    """(seconds from restore until lag p99 is under target for two windows running, seconds until
    everything the broker had acknowledged at the restore is stored); None if never within the run."""
    if fault.restored_s is None:
        return None, None
    lag_back: float | None = None
    caught_up: float | None = None
    after = [w for w in windows if w.end_s > fault.restored_s]
    for index, window in enumerate(after):
        if caught_up is None and published_at_restore is not None and window.stored_total >= published_at_restore:
            caught_up = window.end_s - fault.restored_s
        if lag_back is None and index + 1 < len(after):
            pair = (window, after[index + 1])
            if all(w.observations > 0 and (quantile_s(w.lag_buckets, 0.99) or 0.0) <= target_s for w in pair):
                lag_back = max(window.start_s - fault.restored_s, 0.0)
        if lag_back is not None and caught_up is not None:
            break
    return lag_back, caught_up
