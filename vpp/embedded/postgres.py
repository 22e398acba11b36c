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

from vpp.embedded.privileges import hand_over, run_as

__all__ = ["EmbeddedPostgres", "free_port", "postgres_bin_dir"]

_SERVICE_USERS = ("postgres", "vpp-postgres")  # PostgreSQL refuses to run as root


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
        raise RuntimeError(
            "no PostgreSQL binaries for the embedded database: install the embedded extra "
            "(pip install 'kawasaki-vpp[embedded]', which `make run` does) or PostgreSQL, or set VPP_DATABASE_URL"
        )
    return Path(found).parent


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
        result = subprocess.run(args, capture_output=True, text=True, env=env, check=False, **run_as(_SERVICE_USERS))
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def initialised(self) -> bool:
        return (self.data_dir / "pgdata" / "PG_VERSION").exists()

    def start(self) -> EmbeddedPostgres:
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        hand_over(self.data_dir, _SERVICE_USERS)
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
            **run_as(_SERVICE_USERS),
        )
        return result.returncode == 0

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._run(str(self._bin / "pg_ctl"), "-D", str(self.data_dir / "pgdata"), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
