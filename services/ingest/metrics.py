"""Prometheus metrics of the ingest worker. A registry per worker keeps tests independent."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["IngestMetrics"]


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.received = Counter("vpp_ingest_messages_received", "MQTT messages received", registry=r)
        self.accepted = Counter("vpp_ingest_messages_accepted", "Telemetry messages accepted", registry=r)
        self.written = Counter("vpp_ingest_readings_written", "New readings committed", registry=r)
        self.unreplicated_batches = Counter(
            "vpp_ingest_unreplicated_batches",
            "Committed batches not confirmed to sites because no standby had them in time (HA)",
            registry=r,
        )
        self.duplicates = Counter("vpp_ingest_readings_duplicate", "Readings ignored as duplicates", registry=r)
        self.rejected = Counter("vpp_ingest_messages_rejected", "Messages sent to dead letters", ["reason"], registry=r)
        self.batch_seconds = Histogram(
            "vpp_ingest_batch_seconds",
            "Time to validate and commit one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.lag_seconds = Histogram(
            "vpp_ingest_lag_seconds",
            "Commit time minus the newest reading timestamp of each message",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        self.queue_depth = Gauge("vpp_ingest_queue_depth", "Messages received but not yet committed", registry=r)
        self.db_errors = Counter("vpp_ingest_db_errors", "Failed batch writes (retried)", registry=r)
        self.rollup_slots = Counter("vpp_ingest_rollup_device_slots", "Device-slots recomputed", registry=r)
        self.connected = Gauge(
            "vpp_ingest_broker_connected",
            "How many of the configured brokers ingest is connected to (1 with one broker)",
            registry=r,
        )
