"""`python -m services.ingest`: one ingest worker, configured from VPP_* settings (bootstrap.py)."""

from __future__ import annotations

import faulthandler
import signal
import sys
from types import FrameType

from prometheus_client import start_http_server

from vpp.embedded.resolve import ensure_database
from vpp.log import configure_logging
from vpp.postgres.migrate import upgrade
from vpp.settings import MissingSecretError, settings_or_exit

from .bootstrap import broker_with_retry, tune_interpreter, worker_from_settings
from .metrics import IngestMetrics


def main() -> None:
    settings = settings_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    database_url, _db = ensure_database(settings)
    if _db is not None:
        upgrade(database_url)
    brokers, _broker = broker_with_retry(settings)
    metrics = IngestMetrics()
    try:
        worker = worker_from_settings(settings, database_url, brokers, metrics)
    except MissingSecretError as error:
        sys.exit(f"vpp: {error}")
    if settings.ingest_metrics_port:
        start_http_server(settings.ingest_metrics_port, addr=settings.metrics_host, registry=metrics.registry)

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        worker.stop()
        # The worker flushes for at most stop_flush_timeout_s. Should it hang past that anyway, print every
        # thread's stack to stderr (the service log) and exit: nothing unacknowledged is lost (the broker
        # redelivers it), and a supervisor's SIGTERM must end the process rather than wait for SIGKILL.
        faulthandler.dump_traceback_later(worker.config.stop_flush_timeout_s + 15, exit=True)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    tune_interpreter(worker.config)
    worker.run()


if __name__ == "__main__":
    main()
