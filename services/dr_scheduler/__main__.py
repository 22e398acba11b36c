"""`python -m services.dr_scheduler`: the DR scheduler process, configured from VPP_* settings.

The loop and its leadership are in loop.py, the composition from settings in bootstrap.py; this module
adds what a process of its own needs: signals, the metrics server, and exiting on a missing secret.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from prometheus_client import start_http_server

from vpp.embedded.resolve import ensure_brokers, ensure_database
from vpp.log import configure_logging
from vpp.postgres.migrate import upgrade
from vpp.settings import MissingSecretError, settings_or_exit

from .bootstrap import dispatcher_from_settings, serve_from_settings
from .metrics import SchedulerMetrics


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    database_url, _db = ensure_database(settings)
    if _db is not None:
        upgrade(database_url)
    brokers, _broker = ensure_brokers(settings)
    metrics = SchedulerMetrics()
    if settings.scheduler_metrics_port:
        start_http_server(settings.scheduler_metrics_port, addr=settings.metrics_host, registry=metrics.registry)
    try:
        dispatcher_from_settings(settings, brokers, metrics)  # a missing secret stops the start, not a takeover
    except MissingSecretError as error:
        sys.exit(f"vpp: {error}")
    stopping = threading.Event()

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    serve_from_settings(settings, database_url, brokers, metrics, stopping)


if __name__ == "__main__":
    main()
