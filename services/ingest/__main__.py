"""`python -m services.ingest`: one ingest worker, configured from VPP_* settings."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from types import FrameType

from prometheus_client import start_http_server

from vpp.domain.telemetry import Limits
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.resolve import UnreachableServer, ensure_brokers, ensure_database
from vpp.log import configure_logging
from vpp.mqtt import BrokerAddress
from vpp.postgres.migrate import upgrade
from vpp.settings import MissingSecretError, Settings, settings_or_exit

from .metrics import IngestMetrics
from .worker import IngestConfig, IngestWorker

log = logging.getLogger("vpp.ingest")


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


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    database_url, _db = ensure_database(settings)
    if _db is not None:
        upgrade(database_url)
    brokers, _broker = broker_with_retry(settings)
    try:
        config = config_from_settings(settings, database_url, brokers[0], brokers[1:])
    except MissingSecretError as error:
        sys.exit(f"vpp: {error}")
    metrics = IngestMetrics()
    if settings.ingest_metrics_port:
        start_http_server(settings.ingest_metrics_port, addr=settings.metrics_host, registry=metrics.registry)
    worker = IngestWorker(config, metrics)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    worker.run()


if __name__ == "__main__":
    main()
