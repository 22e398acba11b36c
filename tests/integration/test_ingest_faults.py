"""Nothing lost, nothing doubled: ingest under a SIGKILL, a broker restart and a database outage."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.ingest_fixtures import register_depot, running_ingest, scalar
from tests.support.mqtt_publisher import GatewayPublisher
from tests.support.servers import fresh_database, prepare_template
from tests.support.waiting import wait_for
from vpp.embedded.broker import EmbeddedBroker
from vpp.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOPIC = "vpp/v1/depot-a/meter-1/telemetry"
STEP_KWH = 0.01


class Stream:
    """Publishes `count` meter readings, one second apart, each carrying an import counter."""

    def __init__(self, publisher: GatewayPublisher, count: int, rate_per_s: float) -> None:
        self.publisher = publisher
        self.count = count
        self.rate_per_s = rate_per_s
        self.start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        for i in range(self.count):
            ts = self.start + timedelta(seconds=i)
            self.publisher.publish(TOPIC, {"ts": ts.isoformat(), "power_kw": 36.0, "import_kwh": 1000 + i * STEP_KWH})
            ahead = (i + 1) / self.rate_per_s - (time.monotonic() - began)
            if ahead > 0:
                time.sleep(ahead)

    def __enter__(self) -> Stream:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.thread.join(120)


def assert_complete(db_url: str, count: int, *, extra_rows: int = 0) -> None:
    try:
        wait_for(
            lambda: scalar(db_url, "SELECT count(*) FROM readings"), lambda n: n == count + extra_rows, timeout_s=60
        )
    except AssertionError as missing:
        dead = scalar(db_url, "SELECT string_agg(DISTINCT reason || ': ' || detail, '; ') FROM dead_letters")
        raise AssertionError(f"{missing}; dead letters: {dead}") from None
    # No double counting downstream either: the 30-minute rows add up to the counter's travel.
    expected_kwh = (count - 1) * STEP_KWH
    wait_for(
        lambda: scalar(db_url, "SELECT coalesce(sum(import_kwh), 0) FROM site_energy_30min"),
        lambda v: abs(float(v) - expected_kwh) < 1e-6,  # type: ignore[arg-type]
        timeout_s=30,
    )


def _ingest_process(db_url: str, port: int, log_path: str | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "VPP_DATABASE_URL": db_url,
        "VPP_MQTT_URL": f"mqtt://127.0.0.1:{port}",
        "VPP_INGEST_CLIENT_ID": "ingest-crash",
        "VPP_ENVIRONMENT": "development",  # a private anonymous broker: no real ingest password to give
        "VPP_INGEST_METRICS_PORT": "0",
        "VPP_INGEST_BATCH_MAX_WAIT_MS": "50",
        "VPP_INGEST_ROLLUP_INTERVAL_S": "0.5",
    }
    with open(log_path or os.environ.get("VPP_TEST_INGEST_LOG", os.devnull), "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "services.ingest"], cwd=ROOT, env=env, stdout=log, stderr=log)


def test_sigkill_mid_stream_loses_nothing_and_doubles_nothing(db_url: str, broker: EmbeddedBroker) -> None:
    register_depot(db_url)
    publisher = GatewayPublisher("127.0.0.1", broker.port)
    ingest = _ingest_process(db_url, broker.port)
    try:
        # Until ingest has subscribed once, the broker has no session to keep messages for: wait
        # for a warm-up reading (a day earlier, so it shares no interval with the stream) to land.
        warm_up = {"ts": (datetime.now(UTC) - timedelta(days=1)).isoformat(), "power_kw": 1.0}

        def landed() -> object:
            publisher.publish(TOPIC, warm_up)  # resent until it lands; duplicates are ignored
            return scalar(db_url, "SELECT count(*) FROM readings")

        wait_for(landed, lambda n: n == 1, timeout_s=30, every_s=0.5)
        with Stream(publisher, count=4000, rate_per_s=1500):
            wait_for(lambda: scalar(db_url, "SELECT count(*) FROM readings"), lambda n: n >= 800, timeout_s=60)
            ingest.kill()  # SIGKILL: no flush, no ack, no goodbye
            ingest.wait(10)
            stored_at_kill = scalar(db_url, "SELECT count(*) FROM readings")
            time.sleep(1.0)  # the stream goes on; the broker queues for the absent session
            ingest = _ingest_process(db_url, broker.port)
        publisher.wait_acked(60)
        assert_complete(db_url, 4000, extra_rows=1)
        assert 800 <= stored_at_kill < 4001  # type: ignore[operator]
    finally:
        ingest.terminate()
        ingest.wait(30)
        publisher.close()


def test_broker_restart_mid_stream_loses_nothing(db_url: str, broker: EmbeddedBroker) -> None:
    register_depot(db_url)
    with running_ingest(db_url, broker.port) as worker:
        publisher = GatewayPublisher("127.0.0.1", broker.port)
        try:
            with Stream(publisher, count=3000, rate_per_s=1000):
                wait_for(lambda: scalar(db_url, "SELECT count(*) FROM readings"), lambda n: n >= 700, timeout_s=60)
                broker.restart()
            publisher.wait_acked(90)
            assert_complete(db_url, 3000)
            assert worker.metrics.written._value.get() == 3000
        finally:
            publisher.close()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "outage-pg").start()
    prepare_template(server)
    yield server
    server.destroy()


def test_ten_second_database_outage_loses_nothing(own_postgres: EmbeddedPostgres, broker: EmbeddedBroker) -> None:
    with fresh_database(own_postgres) as db_url:
        register_depot(db_url)
        with running_ingest(db_url, broker.port) as worker:
            publisher = GatewayPublisher("127.0.0.1", broker.port)
            try:
                with Stream(publisher, count=3000, rate_per_s=150):
                    wait_for(lambda: scalar(db_url, "SELECT count(*) FROM readings"), lambda n: n >= 300)
                    own_postgres.stop("immediate")  # a crash, not a polite shutdown
                    time.sleep(10)
                    own_postgres.start()
                publisher.wait_acked(60)
                assert_complete(db_url, 3000)
                assert worker.metrics.db_errors._value.get() >= 1
            finally:
                publisher.close()


def test_worker_started_while_the_broker_is_down_waits_for_it_instead_of_exiting(db_url: str, tmp_path: Path) -> None:
    """A supervisor restarting ingest during a broker restart: the worker must wait for the broker
    (as it waits for the database), not exit and leave its sites unserved (found by `vpp bench faults`)."""
    register_depot(db_url)
    broker = EmbeddedBroker(tmp_path / "late-broker", port=free_port())
    log_path = tmp_path / "ingest.log"
    worker = _ingest_process(db_url, broker.port, str(log_path))
    publisher: GatewayPublisher | None = None
    try:
        wait_for(lambda: log_path.read_text(errors="replace"), lambda text: "broker unreachable at start" in text, 60)
        assert worker.poll() is None, log_path.read_text(errors="replace")
        broker.start()
        publisher = GatewayPublisher("127.0.0.1", broker.port)
        ts = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0).isoformat()

        def stored() -> object:
            # Until ingest's subscription exists a message matches nobody: publish again (storage de-duplicates).
            assert publisher is not None
            publisher.publish(TOPIC, {"ts": ts, "power_kw": 1.0})
            return scalar(db_url, "SELECT count(*) FROM readings")

        wait_for(stored, lambda n: n == 1, 60, every_s=0.5)
    finally:
        if publisher is not None:
            publisher.close()
        worker.terminate()
        try:
            worker.wait(60)  # stops within stop_flush_timeout_s (30 s) and grace, or dumps its stacks and exits
        except subprocess.TimeoutExpired:
            worker.kill()  # not left running into the tests after this one
            raise
        broker.stop()
