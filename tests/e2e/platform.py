"""The platform as a user starts it: `vpp up` in a child process, on its embedded defaults.

No database or broker is given: `vpp up` starts its own PostgreSQL and Mosquitto under a fresh data
folder, seeds the regions, the published figures and the simulated sites, sends the sites' backlog,
then runs ingest, the DR scheduler, the API with the dashboard and the sites' EMSs (which obey DR
signals) until it is stopped with SIGTERM, as Ctrl-C would. The harness reads where everything
listens from the `platform.json` file `vpp up` writes. Shared by the end-to-end tests and
``docs/screenshots.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from services.cli.stack import read_platform_file
from tests.support.waiting import wait_for
from vpp.embedded.postgres import free_port

__all__ = ["DEV_OPERATOR", "Platform", "running_platform"]

DEV_OPERATOR = ("dev-operator", "dev-operator-secret")  # the development client of the embedded defaults
STARTUP_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Platform:
    base_url: str
    site_ids: tuple[str, ...]
    broker_port: int
    db_url: str


def _rolled_up_slots(db_url: str, since: datetime) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM site_energy_30min WHERE slot_start >= %s", (since,)).fetchone()
        return int(row[0]) if row else 0


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no output)"


def _child_env(data_dir: Path) -> dict[str, str]:
    # Embedded defaults: whatever VPP_* the test runner has (a database or broker URL) must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
    env.update(
        VPP_DATA_DIR=str(data_dir),
        VPP_ENVIRONMENT="development",
        VPP_INGEST_METRICS_PORT="0",  # parallel runs must not fight over the fixed metrics ports
        VPP_SCHEDULER_METRICS_PORT="0",
        VPP_SCHEDULER_TICK_S="1",
        COLUMNS="120",
    )
    return env


@contextmanager
def running_platform(
    base: Path,
    *,
    sites: int = 3,
    backfill_hours: float = 192.0,
    interval_s: float = 2.0,
    env: Mapping[str, str] | None = None,
) -> Iterator[Platform]:
    """`vpp up` until the block exits; then a clean stop, which the harness checks. `env`: settings
    given on purpose (e.g. a VPP_DATABASE_URL whose database a test prepared)."""
    data_dir = base / "vpp-data"
    output = base / "vpp-up.log"
    command = [
        sys.executable, "-m", "services.cli.main", "up",
        "--sites", str(sites),
        "--backfill-hours", str(backfill_hours),  # a week and more: the DR forecast wants weekdays and holidays
        "--interval", str(interval_s),
        "--api-port", str(free_port()),
    ]  # fmt: skip
    repo = Path(__file__).resolve().parents[2]
    with output.open("wb") as sink:
        child = subprocess.Popen(
            command,
            cwd=base,
            env={**_child_env(data_dir), **(env or {}), "PYTHONPATH": str(repo)},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while (info := read_platform_file(data_dir)) is None or info.get("phase") != "live":
            if child.poll() is not None:
                raise AssertionError(f"`vpp up` exited with {child.returncode}:\n{_tail(output)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"`vpp up` was not live after {STARTUP_TIMEOUT_S:.0f} s:\n{_tail(output)}")
            time.sleep(0.5)
        db_url = str(info["database_url"])
        now = datetime.now(UTC)
        wait_for(lambda: _rolled_up_slots(db_url, now - timedelta(hours=1)), lambda n: n >= sites * 2, 60)
        yield Platform(
            base_url=str(info["api_url"]),
            site_ids=tuple(info["sites"]),
            broker_port=int(str(info["broker_url"]).rsplit(":", 1)[1]),
            db_url=db_url,
        )
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(90)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
                raise AssertionError(f"`vpp up` did not stop within 90 s of SIGTERM:\n{_tail(output)}") from None
    stopped = _tail(output, 5)
    assert child.returncode == 0, f"`vpp up` ended with {child.returncode}:\n{stopped}"
    assert "stopped cleanly" in stopped, stopped
    assert read_platform_file(data_dir) is None, "platform.json outlived the platform"
