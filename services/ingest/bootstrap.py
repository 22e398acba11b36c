"""What builds an ingest worker from settings: used by `python -m services.ingest` and by `vpp up`.

The composition lives here, once, so the deployed worker and the one `vpp up` runs as a thread are the
same object configured the same way; `__main__` adds only what belongs to a process of its own (signals,
the metrics server, exiting on a missing secret).
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from collections.abc import Sequence
from datetime import timedelta

from vpp.domain.telemetry import Limits
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.resolve import UnreachableServer, ensure_brokers
from vpp.mqtt import BrokerAddress
from vpp.settings import Settings

from .metrics import IngestMetrics
from .worker import IngestConfig, IngestWorker

__all__ = ["broker_with_retry", "config_from_settings", "tune_interpreter", "worker_from_settings"]

log = logging.getLogger("vpp.ingest")


def tune_interpreter(config: IngestConfig) -> None:
    """Process-wide interpreter settings for a process that runs an ingest worker and little else.

    Called by a process's main (`python -m services.ingest`, the ingest benchmarks), never by the worker
    itself: in `vpp up` the worker is one thread beside the API and the scheduler, whose process should
    keep CPython's defaults. Why these values: see `IngestConfig.gil_switch_interval_s` and
    `gc_young_threshold`.
    """
    sys.setswitchinterval(min(sys.getswitchinterval(), config.gil_switch_interval_s))
    young, *older = gc.get_threshold()
    gc.set_threshold(max(young, config.gc_young_threshold), *older)


def config_from_settings(
    settings: Settings, database_url: str, broker: BrokerAddress, more_brokers: Sequence[BrokerAddress] = ()
) -> IngestConfig:
    # A configured broker gets the ingest account's credentials, and so does the embedded one whenever
    # there is a password (always in development: `vpp up`'s Mosquitto enforces the same roles as
    # production). Without one, the embedded broker started here accepts anonymous loopback clients.
    authenticated = bool(settings.broker_urls) or settings.mqtt_ingest_password is not None
    return IngestConfig(
        database_url=database_url,
        broker=broker,
        more_brokers=tuple(more_brokers),
        client_id=settings.ingest_client_id,
        share_group=settings.ingest_share_group,
        partition=settings.ingest_partition,
        partitions=settings.ingest_partitions,
        confirm=settings.ingest_confirm,
        confirm_replicated=settings.ingest_confirm_replicated,
        confirm_replicated_wait_s=settings.ingest_confirm_replicated_wait_s,
        username=settings.mqtt_ingest_username if authenticated else None,
        password=settings.secret("mqtt_ingest_password") if authenticated else None,
        batch_max_messages=settings.ingest_batch_max_readings,
        batch_max_wait_s=settings.ingest_batch_max_wait_ms / 1000,
        max_payload_bytes=settings.ingest_max_payload_bytes,
        limits=Limits(
            future_tolerance=timedelta(seconds=settings.ingest_future_tolerance_s),
            max_age=timedelta(days=settings.ingest_max_age_days),
        ),
        rollup_interval_s=settings.ingest_rollup_interval_s,
        rollup_delay_s=settings.ingest_rollup_delay_s,
        max_gap_s=settings.ingest_max_gap_s,
        receive_maximum=settings.ingest_receive_maximum,
    )


def broker_with_retry(settings: Settings) -> tuple[list[BrokerAddress], EmbeddedBroker | None]:
    """The brokers, waiting while none answers (as the worker waits for the database).

    A worker that a supervisor restarts while the broker restarts too must not exit: its partition's
    sites would go unserved until someone restarted it again, and their messages would wait in its
    session meanwhile (`vpp bench faults` found this: a worker restarted during a broker restart
    exited, and a round "lost" everything its sites sent after). A wrong VPP_MQTT_URL shows up as
    this warning repeating, naming the setting.
    """
    delay_s = 0.1
    while True:
        try:
            return ensure_brokers(settings)
        except UnreachableServer as error:
            log.warning("broker unreachable at start; retrying", extra={"error": str(error)})
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 5.0)


def worker_from_settings(
    settings: Settings,
    database_url: str,
    brokers: Sequence[BrokerAddress],
    metrics: IngestMetrics,
) -> IngestWorker:
    """The worker on the first broker (and every further one); raises MissingSecretError without its password."""
    return IngestWorker(config_from_settings(settings, database_url, brokers[0], brokers[1:]), metrics)
