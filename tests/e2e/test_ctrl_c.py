"""Ctrl-C in the terminal running `vpp up`: the signal goes to the whole foreground process group, not only to
`vpp`. The embedded broker must not be in that group: gone before the services that use it, it made their
shutdown wait out reconnects (23.6 s measured, where `vpp up` alone stops in about 2 s). `vpp` stops it after
them, and nothing it started outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services.cli.platform_file import read_platform_file
from tests.e2e.platform import _child_env, _tail
from vpp.embedded.postgres import free_port

pytestmark = pytest.mark.integration


def _group(pgid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True, check=False).stdout
    return [int(pid) for pid in out.split()]


def test_ctrl_c_to_the_terminals_process_group_stops_everything_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "vpp-data"
    output = tmp_path / "vpp-up.log"
    command = [sys.executable, "-m", "services.cli.main", "up", "--sites", "2", "--backfill-hours", "1",
               "--interval", "2", "--api-port", str(free_port())]  # fmt: skip
    repo = Path(__file__).resolve().parents[2]
    with output.open("wb") as sink:
        # Its own session, as a shell gives a foreground job its own process group.
        child = subprocess.Popen(command, cwd=tmp_path, env={**_child_env(data_dir), "PYTHONPATH": str(repo)},
                                 stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    broker_pid = None
    try:
        deadline = time.monotonic() + 180
        while (info := read_platform_file(data_dir)) is None or info.get("phase") != "live":
            assert child.poll() is None, f"`vpp up` exited with {child.returncode}:\n{_tail(output)}"
            assert time.monotonic() < deadline, f"`vpp up` was not live after 180 s:\n{_tail(output)}"
            time.sleep(0.5)
        broker_pid = info.get("broker_pid")
        if not isinstance(broker_pid, int):
            pytest.fail(f"no embedded Mosquitto here (amqtt fallback?): {info}")
        assert os.getpgid(broker_pid) != child.pid, "the broker would get the terminal's Ctrl-C"

        os.killpg(child.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
        child.wait(90)
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
        if isinstance(broker_pid, int) and _alive(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)
    stopped = _tail(output, 5)
    assert child.returncode == 0, stopped
    assert "stopped cleanly" in stopped, stopped
    assert not _alive(broker_pid), "the embedded Mosquitto outlived `vpp up`"
    assert _group(child.pid) == []
    assert read_platform_file(data_dir) is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not reaped by its parent, which is gone): not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
