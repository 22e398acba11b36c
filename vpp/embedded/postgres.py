"""A private PostgreSQL server under a data folder, from the binaries the `pgserver` wheel bundles.

Used when no VPP_DATABASE_URL is set (a new user needs nothing installed) and by the test suite
(a fresh, disposable server it may stop and start to simulate outages). We drive initdb/pg_ctl
ourselves rather than through pgserver's own manager so we choose the TCP port and can stop and
restart the server at will.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["EmbeddedPostgres", "free_port", "postgres_bin_dir"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path:
    """Where initdb/pg_ctl live: the pgserver wheel's bundle, or a system install as a fallback."""
    # Locate the wheel without importing it: its package __init__ sets up a server manager we don't use.
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bundled / "pg_ctl").exists():
            return bundled
    found = shutil.which("pg_ctl")
    if not found:
        raise RuntimeError("no PostgreSQL binaries: install the project (pgserver) or PostgreSQL")
    return Path(found).parent


_SERVICE_USER = "vpp-postgres"


def _service_user() -> tuple[int, int] | None:
    """PostgreSQL refuses to run as root; as root we run it as an unprivileged system user."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", _SERVICE_USER):
        try:
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", _SERVICE_USER], check=True, capture_output=True)
    entry = pwd.getpwnam(_SERVICE_USER)
    return entry.pw_uid, entry.pw_gid


def _as_unprivileged() -> dict[str, Any]:
    ids = _service_user()
    return {} if ids is None else {"user": ids[0], "group": ids[1]}


def _hand_over(data_dir: Path) -> None:
    """Give the service user the data folder and the right to traverse the folders above it."""
    ids = _service_user()
    if ids is None:
        return
    for folder in [*data_dir.parents, data_dir]:
        mode = folder.stat().st_mode
        if mode & 0o005 != 0o005 and folder != Path("/"):
            folder.chmod(mode | 0o055 if folder != data_dir else mode)
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.stat().st_uid != ids[0]:
            os.chown(path, *ids)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 0
    user: str = "vpp"

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self._bin = postgres_bin_dir()
        port_file = self.data_dir / "vpp.port"
        if not self.port:
            self.port = int(port_file.read_text()) if port_file.exists() else free_port()

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        env = {**os.environ, "LC_ALL": "C"}
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False, **_as_unprivileged())
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def initialised(self) -> bool:
        return (self.data_dir / "pgdata" / "PG_VERSION").exists()

    def start(self) -> EmbeddedPostgres:
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _hand_over(self.data_dir)
        if not self.initialised():
            self._run(
                str(self._bin / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        (self.data_dir / "vpp.port").write_text(str(self.port))
        if self.running():
            return self
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
            "-c max_connections=200 -c shared_buffers=256MB -c synchronous_commit=on "
            "-c timezone=UTC -c log_min_messages=warning"
        )
        self._run(
            str(self._bin / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(self.data_dir / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def running(self) -> bool:
        pgdata = self.data_dir / "pgdata"
        result = subprocess.run(
            [str(self._bin / "pg_ctl"), "-D", str(pgdata), "status"],
            capture_output=True,
            check=False,
            **_as_unprivileged(),
        )
        return result.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run(str(self._bin / "pg_ctl"), "-D", str(self.data_dir / "pgdata"), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
