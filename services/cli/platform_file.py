"""`.vpp-data/platform.json`: where a running `vpp up` can be reached, and whether it still runs.

The file is removed on a clean stop, but `kill -9` or a crash leaves it behind, so a reader never trusts
it alone: the recorded process must still exist and be the same process (its start time, from
/proc, guards against a recycled PID).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "PLATFORM_FILE",
    "PlatformRecord",
    "leftover_servers",
    "process_start_ticks",
    "read_platform_file",
    "read_platform_record",
]

PLATFORM_FILE = "platform.json"


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])


def _alive(pid: int, start_ticks: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if start_ticks is None:
        return True
    return process_start_ticks(pid) == start_ticks


@dataclass(frozen=True)
class PlatformRecord:
    body: dict[str, Any]
    alive: bool

    @property
    def pid(self) -> int:
        return int(self.body.get("pid", 0))

    @property
    def phase(self) -> str:
        return str(self.body.get("phase", "?"))


def read_platform_record(data_dir: Path) -> PlatformRecord | None:
    """The file's content and whether the process that wrote it still runs; None when there is none."""
    try:
        body: dict[str, Any] = json.loads((data_dir / PLATFORM_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    pid = body.get("pid")
    alive = isinstance(pid, int) and pid > 0 and _alive(pid, body.get("process_start_ticks"))
    return PlatformRecord(body, alive)


def read_platform_file(data_dir: Path) -> dict[str, Any] | None:
    """The content of a live platform's file; None when there is none or its process is gone."""
    record = read_platform_record(data_dir)
    return record.body if record is not None and record.alive else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftover_servers(data_dir: Path, record: PlatformRecord) -> list[tuple[str, int]]:
    """Embedded servers a killed `vpp up` left running (the next `vpp up` takes them over)."""
    found: list[tuple[str, int]] = []
    try:
        postmaster = (data_dir / "postgres" / "pgdata" / "postmaster.pid").read_text().split()
        if postmaster and _pid_alive(int(postmaster[0])):
            found.append(("PostgreSQL", int(postmaster[0])))
    except (OSError, ValueError):
        pass
    broker_pid = record.body.get("broker_pid")
    if isinstance(broker_pid, int) and broker_pid > 0 and _pid_alive(broker_pid):
        found.append(("Mosquitto", broker_pid))
    return found
