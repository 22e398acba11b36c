"""Running private servers as an unprivileged user when we are root (as in containers and CI).

PostgreSQL refuses to run as root, and Mosquitto started as root drops to the `mosquitto` user: either
way the server must own its data folder and be able to traverse the folders above it, or it silently
loses its persistence file.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["hand_over", "run_as", "service_ids"]


def service_ids(candidates: Sequence[str]) -> tuple[int, int] | None:
    """(uid, gid) of the first existing user among `candidates`, creating the last if none; None unless root."""
    if os.geteuid() != 0:
        return None
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", candidates[-1]], check=True, capture_output=True)
    entry = pwd.getpwnam(candidates[-1])
    return entry.pw_uid, entry.pw_gid


def run_as(candidates: Sequence[str]) -> dict[str, Any]:
    """`subprocess` keyword arguments that run a command as the service user (nothing when not root)."""
    ids = service_ids(candidates)
    return {} if ids is None else {"user": ids[0], "group": ids[1]}


def hand_over(data_dir: Path, candidates: Sequence[str]) -> None:
    """Give the service user `data_dir` and the right to traverse the folders above it."""
    ids = service_ids(candidates)
    if ids is None:
        return
    for folder in data_dir.parents:
        mode = folder.stat().st_mode
        if mode & 0o001 == 0:
            folder.chmod(mode | 0o011)  # traverse only: listing stays private
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.stat().st_uid != ids[0]:
            os.chown(path, *ids)
