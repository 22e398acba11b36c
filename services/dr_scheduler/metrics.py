"""Prometheus metrics of the DR scheduler. A registry per scheduler keeps tests independent."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SchedulerMetrics"]


@dataclass
class SchedulerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.plans = Counter("vpp_dr_site_plans", "Site plans computed", ["outcome"], registry=r)
        self.plan_seconds = Histogram(
            "vpp_dr_plan_seconds", "Forecast and plan time per site",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1), registry=r,
        )  # fmt: skip
        self.signals = Counter("vpp_dr_signals_published", "DR signals published", ["status"], registry=r)
        self.publish_failures = Counter("vpp_dr_signal_publish_failures", "Signals the broker did not ack", registry=r)
        self.acks = Counter("vpp_dr_acks_received", "Acknowledgements received", ["result"], registry=r)
        self.transitions = Counter("vpp_dr_event_transitions", "Event lifecycle changes", ["to_status"], registry=r)
        self.alarms = Counter("vpp_dr_demand_alarms", "Live demand alarms raised", ["level"], registry=r)
        self.implausible_limits = Counter(
            "vpp_dr_implausible_limits_refused", "Import limits refused as implausible for the site", registry=r
        )
        self.verified_kwh = Counter("vpp_dr_verified_reduction_kwh", "Verified reductions, kWh", registry=r)
        self.tick_seconds = Histogram("vpp_dr_tick_seconds", "Duration of one scheduler tick", registry=r)
        self.programme_limits = Counter(
            "vpp_dr_peak_programme_limits_sent", "Peak programme limits sent to sites", ["kind"], registry=r
        )
        self.programme_left_out = Counter(
            "vpp_dr_peak_programme_left_out", "Enrolled sites left out of the peak programme for a day", ["reason"],
            registry=r,
        )  # fmt: skip
        self.programme_solve_seconds = Histogram(
            "vpp_dr_peak_programme_solve_seconds", "Time to solve one site's peak programme for a day",
            buckets=(0.25, 0.5, 1, 2, 4, 8, 16), registry=r,
        )  # fmt: skip
        # Set once forecasts have been fed (0 before: the alert ignores it); the feeder should post daily.
        self.weather_issued = Gauge(
            "vpp_dr_weather_forecast_latest_issue_timestamp_seconds",
            "When the newest stored weather forecast issue was issued (Unix time)", registry=r,
        )  # fmt: skip
        self.connected = Gauge(
            "vpp_dr_broker_connected", "How many of the configured brokers the scheduler is connected to", registry=r
        )
