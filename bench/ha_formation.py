"""A private pg_auto_failover formation on 127.0.0.1, for `vpp bench ha` and the HA tests.

It runs deploy/ha/pg-ha.sh, the script the runbook gives operators, command for command: a monitor,
then a primary, then `standbys` synchronous standbys, each a `pg_autoctl … --run` process of its own, as the
postgres user (PostgreSQL refuses root), under one temporary folder, on free ports; `destroy` stops
them and removes the folder. Faults are real: `sigkill` kills a node's keeper and every PostgreSQL
process under it, as a dead server would leave them, and `rejoin` runs the node again the way the
runbook's "a failed server comes back" does.

What pg_auto_failover sets up (checked by tests/integration/ha/test_db_failover.py): on the primary
`synchronous_commit = on` and `synchronous_standby_names = 'ANY 1 (pgautofailover_standby_N)'`, so a
commit returns only once the standby has flushed it. After a failover the promoted node runs alone
as `wait_primary` with synchronous replication off until the old node has rejoined and caught up.

With `standbys=2` (the production layout of deploy/ha/README.md) the formation also gets
`number_sync_standbys = 1` (`pg-ha.sh sync-standbys`): `synchronous_standby_names = 'ANY 1 (…_2, …_3)'`,
and after one node is lost the promoted primary still has a synchronous standby, so every commit
still waits for a second server (tests/integration/ha/test_db_sync_standbys.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpp.embedded.postgres import free_port
from vpp.embedded.privileges import hand_over, run_as

__all__ = ["PG_HA_SCRIPT", "Formation", "NodeState", "pg_auto_failover_installed"]

ROOT = Path(__file__).resolve().parents[1]
PG_HA_SCRIPT = ROOT / "deploy" / "ha" / "pg-ha.sh"
_SERVICE_USERS = ("postgres",)  # pg_auto_failover's Debian package runs as postgres; so do we
_PG_BINDIR = Path("/usr/lib/postgresql/15/bin")


def pg_auto_failover_installed() -> bool:
    return shutil.which("pg_autoctl") is not None and (_PG_BINDIR / "pg_ctl").exists()


@dataclass(frozen=True)
class NodeState:
    name: str
    port: int
    reported: str
    assigned: str


@dataclass
class Formation:
    base: Path
    # Two standbys is the layout that keeps "on two servers" through the loss of any one node; the
    # older tests use one (a shorter start on a busy machine).
    standbys: int = 1
    unhealthy_ms: int = 3000
    monitor_port: int = field(default_factory=free_port)
    node_ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base = self.base.resolve()
        if self.standbys < 1:
            raise ValueError("a formation needs at least one standby")
        for index in range(1, self.data_nodes + 1):
            self.node_ports.setdefault(f"node{index}", free_port())

    # -- the runbook's commands ----------------------------------------------------------------
    def _env(self, name: str, port: int, **extra: str) -> dict[str, str]:
        # pg_autoctl keeps its configuration and state under XDG folders: ours go in the temp folder.
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",  # the postgres user may not read root's own folders
            "HOME": str(self.base),
            "XDG_CONFIG_HOME": str(self.base / "xdg-config"),
            "XDG_DATA_HOME": str(self.base / "xdg-data"),
            "PGDATA": str(self.base / name),
            "PGPORT": str(port),
            "PG_HA_HOST": "127.0.0.1",
            "PG_HA_AUTH": "trust",  # private servers on loopback; production uses scram-sha-256
            "PG_HA_SSL": "--ssl-self-signed",
            "PG_HA_UNHEALTHY_MS": str(self.unhealthy_ms),
            "LC_ALL": "C.UTF-8",
            **extra,
        }

    @staticmethod
    def _script(command: str) -> list[str]:
        # The script's text is passed to sh, so it needs no path the postgres user can read.
        return ["/bin/sh", "-c", PG_HA_SCRIPT.read_text(), str(PG_HA_SCRIPT), command]

    def _spawn(self, command: str, name: str, port: int, **extra: str) -> None:
        log = (self.base / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self._script(command),
            env=self._env(name, port, **extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.base,
            start_new_session=True,  # out of the harness's process group: Ctrl-C must not kill servers
            **run_as(_SERVICE_USERS),
        )
        log.close()

    def run(self, command: str, name: str, port: int = 0, **extra: str) -> str:
        result = subprocess.run(
            self._script(command),
            env=self._env(name, port, **extra),
            capture_output=True,
            text=True,
            cwd=self.base,
            check=False,
            timeout=120,
            **run_as(_SERVICE_USERS),
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg-ha.sh {command} ({name}) failed: {result.stderr.strip() or result.stdout.strip()}")
        return str(result.stdout)

    @property
    def monitor_uri(self) -> str:
        return f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover?sslmode=require"

    def start(self, timeout_s: float = 180.0) -> Formation:
        self.base.mkdir(parents=True, exist_ok=True)
        hand_over(self.base, _SERVICE_USERS)
        self._spawn("monitor", "monitor", self.monitor_port)
        try:
            self._wait(lambda: self._monitor_ready(), timeout_s, "the monitor did not start")
        except TimeoutError as error:
            # The formation folder goes with destroy(): say why here (seen once under load, cause unknown).
            log = (self.base / "monitor.log").read_text(errors="replace")[-2000:]
            raise TimeoutError(f"{error}; monitor.log ends:\n{log}") from error
        self.run("tune-monitor", "monitor", self.monitor_port)
        first, *others = self.node_ports.items()
        self._spawn("node", first[0], first[1], PG_HA_NAME=first[0], PG_HA_MONITOR=self.monitor_uri)
        self._wait(lambda: self._states_are({"single"}), timeout_s, "the first node did not start")
        self.run("app-role", *first)
        for name, port in others:
            self._spawn("node", name, port, PG_HA_NAME=name, PG_HA_MONITOR=self.monitor_uri)
        self.wait_healthy(timeout_s, checkpoint_on=first)
        if self.standbys >= 2:
            # One synchronous standby of two: any one node may go and a commit still waits for a second
            # server. pg_auto_failover accepts N only with N+1 standbys registered, so set it now.
            self.run("sync-standbys", "monitor", self.monitor_port)
            self.wait_healthy(timeout_s)  # the primary goes through apply_settings
        return self

    @property
    def data_nodes(self) -> int:
        return self.standbys + 1

    def _monitor_ready(self) -> bool:
        try:
            self.run("state", "monitor", self.monitor_port)
        except RuntimeError:
            return False
        return True

    # -- state ----------------------------------------------------------------------------------
    def states(self) -> list[NodeState]:
        try:
            raw: list[dict[str, Any]] = json.loads(self.run("state", "monitor", self.monitor_port) or "[]")
        except (RuntimeError, ValueError, subprocess.TimeoutExpired):
            return []
        return [
            NodeState(n["nodename"], int(n["nodeport"]), n["current_group_state"], n["assigned_group_state"])
            for n in raw
        ]

    def _states_are(self, wanted: set[str]) -> bool:
        states = self.states()
        return bool(states) and all(s.reported == s.assigned and s.reported in wanted for s in states)

    def healthy(self) -> bool:
        """A primary with every other data node a streaming synchronous standby."""
        states = self.states()
        return (
            len(states) == self.data_nodes
            and all(s.reported == s.assigned for s in states)
            and sorted(s.reported for s in states) == sorted(["primary"] + ["secondary"] * (self.data_nodes - 1))
        )

    def wait_healthy(self, timeout_s: float = 180.0, checkpoint_on: tuple[str, int] | None = None) -> None:
        """Until `healthy`; `checkpoint_on` (the primary) gets a CHECKPOINT every few seconds meanwhile,
        which a standby's base backup waits for (the runbook's step when replacing a server)."""
        last_checkpoint = 0.0

        def ready() -> bool:
            nonlocal last_checkpoint
            if checkpoint_on is not None and time.monotonic() - last_checkpoint > 3.0:
                last_checkpoint = time.monotonic()
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self.run("checkpoint", *checkpoint_on)
            return self.healthy()

        self._wait(ready, timeout_s, "the formation did not become healthy")

    def primary(self) -> str:
        for state in self.states():
            if state.assigned in {"primary", "wait_primary", "single"} and state.reported == state.assigned:
                return state.name
        raise RuntimeError(f"no primary: {self.states()}")

    def url(self, user: str = "vpp", dbname: str = "vpp") -> str:
        """The multi-host URL every service uses: libpq tries the hosts in turn and keeps the writable one."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.node_ports.values())
        return f"postgresql://{user}@{hosts}/{dbname}?target_session_attrs=read-write"

    # -- faults -----------------------------------------------------------------------------------
    def sigkill(self, name: str) -> None:
        """A dead server: freeze the node's keeper and its PostgreSQL processes, then SIGKILL them all.

        Freezing first matters: pg_autoctl's supervisor restarts a PostgreSQL it sees die.
        """
        process = self.processes.pop(name, None)
        roots = [process.pid] if process is not None else []
        roots += _postmasters(self.base / name)
        victims = _tree(roots)
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in victims:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        if process is not None:
            process.wait(10)
        self._wait(lambda: not any(_alive(pid) for pid in victims), 10, f"{name} did not die")
        # A crashed machine leaves no lock file owner behind; the zombie-free restart needs none either.
        (self.base / name / "postmaster.pid").unlink(missing_ok=True)

    def rejoin(self, name: str) -> None:
        """Run a node that was stopped or crashed again (`pg-ha.sh run`): it rejoins as a standby."""
        self._spawn("run", name, self.node_ports[name])

    def replace(self, name: str) -> None:
        """A server is gone for good: forget it at the monitor (`pg-ha.sh drop`), then build a new node
        in its place from an empty folder (`pg-ha.sh node`: it clones the primary)."""
        self.sigkill(name)
        self.run("drop", "monitor", self.monitor_port, PG_HA_MONITOR=self.monitor_uri, PG_HA_NAME=name)
        shutil.rmtree(self.base / name, ignore_errors=True)
        shutil.rmtree(self.base / "xdg-config" / "pg_autoctl" / str(self.base / name).lstrip("/"), ignore_errors=True)
        shutil.rmtree(self.base / "xdg-data" / "pg_autoctl" / str(self.base / name).lstrip("/"), ignore_errors=True)
        port = self.node_ports[name]
        self._spawn("node", name, port, PG_HA_NAME=name, PG_HA_MONITOR=self.monitor_uri)
        primary = self.primary()
        self.wait_healthy(180, checkpoint_on=(primary, self.node_ports[primary]))

    def switchover(self) -> None:
        """Planned: the standby becomes primary, the primary a standby (`pg-ha.sh switchover`)."""
        self.run("switchover", "monitor", self.monitor_port)

    def destroy(self) -> None:
        for name in list(self.processes):
            process = self.processes[name]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.kill()
                process.wait(5)
        # Whatever is left (a slow stop, a supervisor's orphaned children): every process of ours runs
        # in the formation's folder, so that finds them all, whatever their parents did.
        for _attempt in range(50):
            left = _running_in(self.base)
            if not left:
                break
            for sig in (signal.SIGSTOP, signal.SIGKILL):
                for pid in left:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
            time.sleep(0.1)
        self.processes.clear()
        shutil.rmtree(self.base, ignore_errors=True)

    @staticmethod
    def _wait(ready: Any, timeout_s: float, message: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.2)
        raise TimeoutError(message if isinstance(message, str) else "timed out")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(parent, []).append(int(entry))
    return tree


def _tree(roots: list[int]) -> list[int]:
    children = _children()
    found: list[int] = []
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in found:
            continue
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _running_in(folder: Path) -> list[int]:
    """Live processes whose working directory is `folder` or below (pg_autoctl and PostgreSQL both)."""
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
        except OSError:
            continue
        if (cwd == folder or folder in cwd.parents) and _alive(int(entry)):
            found.append(int(entry))
    return found


def _postmasters(pgdata: Path) -> list[int]:
    """A postmaster a killed keeper left behind (its pid is the lock file's first line)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        if _alive(pid):
            return [pid]
    return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
