"""`vpp up --depot-protocol oadr2b`: the platform starts its 2.0b VTN and the depot registers with it as a VEN.

The whole DR loop over 2.0b is tests/integration/oadr2b/test_depot_ven.py; this checks the wiring of
`vpp up` as a person runs it: development certificates in the data folder, the depot onboarded and
registered over TLS with its client certificate, polling, no MQTT EMS for it, and a clean stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from services.cli.platform_file import read_platform_record
from services.cli.seed import DEPOT
from tests.support.waiting import wait_for
from vpp.embedded.postgres import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _depot_ven(db_url: str) -> tuple[object, ...] | None:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            """SELECT registration_id IS NOT NULL, last_poll_at IS NOT NULL, targets FROM oadr2b_vens
               WHERE ven_name = 'depot-ven'"""
        ).fetchone()


def test_up_with_the_depot_on_oadr2b(tmp_path: Path) -> None:
    data_dir = tmp_path / ".vpp-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
    env.update(
        PYTHONPATH=str(REPO), VPP_DATA_DIR=str(data_dir), VPP_ENVIRONMENT="development",
        VPP_INGEST_METRICS_PORT="0", VPP_SCHEDULER_METRICS_PORT="0", VPP_OADR2B_PORT=str(free_port()),
        VPP_OADR2B_POLL_INTERVAL_S="1", COLUMNS="200",
    )  # fmt: skip
    output = tmp_path / "up.log"
    command = [sys.executable, "-m", "services.cli.main", "up", "--depot-protocol", "oadr2b", "--sites", "2",
               "--backfill-hours", "0", "--interval", "1", "--api-port", str(free_port())]  # fmt: skip
    with output.open("wb") as sink:
        child = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while (record := read_platform_record(data_dir)) is None or record.phase != "live":
            assert child.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.5)
        body = record.body
        assert str(body["oadr2b_vtn_url"]).startswith("https://127.0.0.1:")
        assert body["oadr2b_sites"] == [DEPOT.site_id]
        assert body["sites"] == ["site-00001", DEPOT.site_id]  # the depot has no MQTT EMS, but is simulated
        registered, polled, targets = wait_for(
            lambda: _depot_ven(str(body["database_url"])), lambda row: row is not None and bool(row[1]), 30
        )  # type: ignore[misc]
        assert (registered, polled, targets) == (True, True, [f"site:{DEPOT.site_id}"])
        assert (data_dir / "oadr2b" / "dev-ca.crt").exists()
        assert oct((data_dir / "oadr2b").stat().st_mode & 0o777) == "0o700"
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            child.wait(90)
    text = output.read_text()
    assert child.returncode == 0, text
    assert "2.0b VTN" in text, text
    assert "stopped cleanly" in text, text
