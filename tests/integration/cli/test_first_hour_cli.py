"""The `vpp` command as a newcomer meets it: bad configuration, wrong ids, a killed platform.

Every case runs the real console entry point in a child process (as a person's shell would) in a
scratch folder, and checks what the person sees — one line naming what to change, a non-zero exit code,
no traceback — and that no server is left running (by PID).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from services.cli.platform_file import PLATFORM_FILE, process_start_ticks, read_platform_record
from vpp.domain.slots import JST
from vpp.embedded.postgres import EmbeddedPostgres, free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPP_")}
    env.update(
        PYTHONPATH=str(REPO),
        VPP_DATA_DIR=str(data_dir),
        VPP_ENVIRONMENT="development",
        VPP_INGEST_METRICS_PORT="0",
        VPP_SCHEDULER_METRICS_PORT="0",
        COLUMNS="200",
    )
    env.update(extra)
    return env


def _vpp(cwd: Path, *args: str, timeout_s: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        cwd=cwd,
        env=_env(cwd / ".vpp-data", **env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    return errors[0]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _assert_no_embedded_server(data_dir: Path) -> None:
    postmaster = data_dir / "postgres" / "pgdata" / "postmaster.pid"
    if postmaster.exists():
        pid = int(postmaster.read_text().split()[0])
        assert not _pid_alive(pid), f"embedded PostgreSQL (pid {pid}) left running"
    for child in _descendant_servers():
        raise AssertionError(f"server left running: {child}")


def _descendant_servers() -> list[str]:
    # Mosquitto processes started under this test's scratch folders (their config path names it).
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "mosquitto" in cmdline and "first_hour" in cmdline:
            found.append(f"pid {proc.name}: {cmdline}")
    return found


def test_help_is_quick_because_it_imports_nothing_heavy() -> None:
    probe = (
        "import sys; from services.cli.main import main; code = main(['--help']); "
        "heavy = sorted(m for m in ('fastapi', 'scipy', 'pvlib', 'psycopg', 'sqlalchemy', 'pydantic', 'uvicorn') "
        "if m in sys.modules); print('HEAVY', heavy, code)"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "HEAVY [] 0" in out, out
    assert "Commands" in out
    assert "status" in out
    assert "bench" in out


def test_database_url_without_scheme(tmp_path: Path) -> None:
    result = _vpp(tmp_path, "up", "--backfill-hours", "0", VPP_DATABASE_URL="127.0.0.2/vpp")
    _assert_one_line_error(result, "VPP_DATABASE_URL", "postgresql://")
    assert "stopped cleanly" not in result.stdout


def test_unreachable_database(tmp_path: Path) -> None:
    url = f"postgresql://vpp@127.0.0.1:{free_port()}/postgres"
    result = _vpp(tmp_path, "up", "--backfill-hours", "0", VPP_DATABASE_URL=url)
    _assert_one_line_error(result, "cannot use the database", "VPP_DATABASE_URL")
    assert "stopped cleanly" not in result.stdout


def test_unreachable_broker_stops_the_database_it_started(tmp_path: Path) -> None:
    first_hour = tmp_path / "first_hour"
    first_hour.mkdir()
    result = _vpp(first_hour, "up", "--backfill-hours", "0", VPP_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}")
    _assert_one_line_error(result, "cannot reach the MQTT broker", "VPP_MQTT_URL")
    assert "✓ MQTT broker" not in result.stdout
    assert "✓ PostgreSQL" in result.stdout  # it got that far, then stopped what it had started
    _assert_no_embedded_server(first_hour / ".vpp-data")


def test_api_port_in_use_stops_everything(tmp_path: Path) -> None:
    first_hour = tmp_path / "first_hour"
    first_hour.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _vpp(first_hour, "up", "--backfill-hours", "0", "--api-port", str(port))
    _assert_one_line_error(result, f"127.0.0.1:{port}", "--api-port")
    _assert_no_embedded_server(first_hour / ".vpp-data")


def test_bad_setting_value_names_the_variable(tmp_path: Path) -> None:
    result = _vpp(tmp_path, "dr", "events", VPP_ENVIRONMENT="prod")
    _assert_one_line_error(result, "VPP_ENVIRONMENT")


def test_simulate_beside_a_running_vpp_up_says_its_broker_needs_accounts(tmp_path: Path) -> None:
    # A live platform record (this test process stands in for `vpp up`): its broker runs the roles.
    data_dir = tmp_path / ".vpp-data"
    data_dir.mkdir()
    me = os.getpid()
    (data_dir / PLATFORM_FILE).write_text(
        json.dumps({"pid": me, "process_start_ticks": process_start_ticks(me), "phase": "live"})
    )
    result = _vpp(tmp_path, "simulate", "--duration", "1", "--no-register")
    _assert_one_line_error(result, "`vpp up` runs on", "--broker-url")


def test_status_outside_a_platform_folder_creates_and_starts_nothing(tmp_path: Path) -> None:
    result = _vpp(tmp_path, "status")
    _assert_one_line_error(result, "no platform data", "vpp up")
    assert not (tmp_path / ".vpp-data").exists()


def test_unknown_event_is_one_line(tmp_path: Path, db_url: str) -> None:
    result = _vpp(tmp_path, "dr", "verify", "does-not-exist", VPP_DATABASE_URL=db_url)
    _assert_one_line_error(result, "no DR event 'does-not-exist'", "vpp dr events")


def test_events_are_listed_in_japan_time(tmp_path: Path, db_url: str) -> None:
    # Tomorrow (JST): `vpp dr create` refuses a window that is already over, as the API does.
    day = (datetime.now(JST) + timedelta(days=1)).date().isoformat()
    created = _vpp(
        tmp_path, "dr", "create", "--start", f"{day}T13:00+09:00", "--end", f"{day}T14:00+09:00",
        "--kw", "5", "--event-id", "jst-check", VPP_DATABASE_URL=db_url,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    jst = _vpp(tmp_path, "dr", "events", VPP_DATABASE_URL=db_url)
    assert "start (JST)" in jst.stdout, jst.stdout
    assert f"{day} 13:00" in jst.stdout, jst.stdout
    assert "14:00" in jst.stdout, jst.stdout
    utc = _vpp(tmp_path, "dr", "events", "--utc", VPP_DATABASE_URL=db_url)
    assert "start (UTC)" in utc.stdout, utc.stdout
    assert f"{day} 04:00" in utc.stdout, utc.stdout


def test_status_after_kill_9_says_the_platform_is_dead(tmp_path: Path) -> None:
    first_hour = tmp_path / "first_hour"
    first_hour.mkdir()
    data_dir = first_hour / ".vpp-data"
    log = (first_hour / "up.log").open("wb")
    child = subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "up", "--backfill-hours", "0", "--api-port", str(free_port())],
        cwd=first_hour,
        env=_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while (record := read_platform_record(data_dir)) is None or record.phase != "live":
            assert child.poll() is None, (first_hour / "up.log").read_text()
            assert time.monotonic() < deadline, (first_hour / "up.log").read_text()
            time.sleep(0.5)
        running = _vpp(first_hour, "status")
        assert running.returncode == 0, running.stderr
        assert "platform running" in running.stdout, running.stdout
        assert f"pid {child.pid}" in running.stdout, running.stdout
        assert "readings stored:" in running.stdout, running.stdout
        assert "site-00001: latest 30-minute energy" in running.stdout, running.stdout
        broker_pid = record.body["broker_pid"]

        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert read_platform_record(data_dir) is not None, "the file stays behind after kill -9"
        dead = _vpp(first_hour, "status")
        assert dead.returncode == 0, dead.stderr
        assert "platform not running" in dead.stdout, dead.stdout
        assert "without stopping cleanly" in dead.stdout, dead.stdout
        assert "depot" in dead.stdout  # the stored data is still shown, under that warning
        assert "PostgreSQL (pid" in dead.stdout, dead.stdout
        assert f"Mosquitto (pid {broker_pid})" in dead.stdout, dead.stdout
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        log.close()
        EmbeddedPostgres(data_dir / "postgres").stop("immediate")
        record = read_platform_record(data_dir)
        if record is not None and isinstance(record.body.get("broker_pid"), int):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.body["broker_pid"], signal.SIGKILL)


def test_debug_shows_the_traceback_instead(tmp_path: Path) -> None:
    result = _vpp(tmp_path, "--debug", "status")
    assert result.returncode != 0
    assert "Traceback" in result.stderr, result.stderr
    assert "CliError: no platform data" in result.stderr, result.stderr
