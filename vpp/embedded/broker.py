"""A private MQTT broker for the embedded default and the test suite.

Preferred: a private Mosquitto 2 process (MQTT v5, shared subscriptions, persistent sessions) with a
generated configuration under the data folder. Without a `mosquitto` binary, an in-process amqtt
broker stands in: it speaks MQTT 3.1.1 only and has no shared subscriptions, so clients connecting
to it must use protocol 3.1.1 and a single ingest worker (`BrokerInfo.mqtt5` tells them). It accepts
anyone and enforces no roles, which it says in the log when it starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpp.broker_roles import MAX_PACKET_BYTES, broker_security_lines, dynamic_security_plugin
from vpp.embedded.postgres import free_port
from vpp.embedded.privileges import hand_over

__all__ = ["BrokerInfo", "EmbeddedBroker", "mosquitto_config", "wait_for_port"]

log = logging.getLogger("vpp.embedded.broker")


@dataclass(frozen=True)
class BrokerInfo:
    host: str
    port: int
    mqtt5: bool

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s} s") from None
            time.sleep(0.05)


def mosquitto_config(
    port: int,
    data_dir: Path,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    dynamic_security_file: Path | None = None,
) -> str:
    """Mosquitto settings for ingest's at-least-once path.

    Ingest acknowledges a message only after its batch commits, so thousands of QoS 1 messages are
    legitimately in flight per ingest client; the default of 20 would throttle it to a crawl. The
    queue bound protects the broker while ingest is down; the persistence file lets queued
    messages and sessions survive a broker restart.

    With `dynamic_security_file` (written by `vpp broker-config`) the broker enforces the platform's
    roles exactly as production does (vpp/broker_roles.py); the packet size limit applies always.
    """
    lines = [
        f"listener {port} 127.0.0.1",
        "persistence true",
        f"persistence_location {data_dir}/",
        "autosave_interval 10",
        "max_inflight_messages 0",
        "max_queued_messages 2000000",
        "set_tcp_nodelay true",
        "persistent_client_expiration 14d",
        "log_type error",
        "log_type warning",
        f"log_dest file {data_dir}/mosquitto.log",
    ]
    if dynamic_security_file:
        plugin = dynamic_security_plugin()
        if plugin is None:
            raise RuntimeError("this Mosquitto has no dynamic-security plugin (mosquitto_dynamic_security.so)")
        return "\n".join(lines + broker_security_lines(plugin, str(dynamic_security_file))) + "\n"
    lines += [f"max_packet_size {MAX_PACKET_BYTES}", f"message_size_limit {MAX_PACKET_BYTES}"]
    if password_file:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines.append("allow_anonymous true")
    if acl_file:
        lines.append(f"acl_file {acl_file}")
    return "\n".join(lines) + "\n"


def _running(pid: int) -> bool:
    """Alive and not a zombie (a stopped child of another parent stays one until that parent reaps it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(errors="replace").rsplit(") ", 1)[-1]
    except OSError:
        return False
    return not state.startswith("Z")


@dataclass
class EmbeddedBroker:
    data_dir: Path
    port: int = 0
    prefer_mosquitto: bool = True
    password_file: Path | None = None
    acl_file: Path | None = None
    dynamic_security_file: Path | None = None
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _amqtt: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port_file = self.data_dir / "broker.port"
        if not self.port:
            self.port = int(port_file.read_text()) if port_file.exists() else free_port()
        port_file.write_text(str(self.port))

    @property
    def info(self) -> BrokerInfo:
        return BrokerInfo("127.0.0.1", self.port, mqtt5=self._amqtt is None)

    @staticmethod
    def mosquitto_binary() -> str | None:
        return shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
        )

    def start(self) -> BrokerInfo:
        if self._process is None and self._listening():
            # Another `vpp` process (e.g. `vpp up`) already runs the embedded broker of this data folder.
            return self.info
        binary = self.mosquitto_binary() if self.prefer_mosquitto else None
        if binary:
            conf = self.data_dir / "mosquitto.conf"
            # As root, Mosquitto drops to its own user and could not write its persistence file here.
            hand_over(self.data_dir, ("mosquitto",))
            conf.write_text(
                mosquitto_config(
                    self.port,
                    self.data_dir,
                    password_file=self.password_file,
                    acl_file=self.acl_file,
                    dynamic_security_file=self.dynamic_security_file,
                )
            )
            # Its own session: a terminal's Ctrl-C goes to the whole foreground process group, and a broker
            # gone before the services that use it makes their shutdown wait out reconnects (23 s measured
            # for `vpp up`). Whoever started it stops it, after them.
            self._process = subprocess.Popen(
                [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
            )
            try:
                wait_for_port("127.0.0.1", self.port)
            except TimeoutError:
                self._process.kill()
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto did not start: {err.strip()}") from None
        else:
            # Said in the log every time: a developer must not take a trial on amqtt for the broker rules.
            log.warning(
                "embedded amqtt broker (no mosquitto binary): broker roles are NOT enforced here; any client "
                "may connect and publish or subscribe to any topic. Install mosquitto (`make deps`) to run "
                "the production rules (dynamic security)",
                extra={"port": self.port, "roles_requested": bool(self.dynamic_security_file or self.password_file)},
            )
            self._start_amqtt()
        return self.info

    @property
    def roles_enforced(self) -> bool:
        """Whether this broker runs the production rules (vpp/broker_roles.py) in full."""
        return self._process is not None and self.dynamic_security_file is not None

    @property
    def roles(self) -> str:
        """What this broker enforces, in a few words for a start-up screen."""
        if self._amqtt is not None:
            return "amqtt: roles NOT enforced"
        if self.dynamic_security_file:
            return "roles enforced (dynamic security)"
        if self.password_file and self.acl_file:
            return "password and ACL files (subscriptions not checked)"
        return "anonymous, roles NOT enforced"

    def stop_leftover(self, timeout_s: float = 15.0) -> int | None:
        """Stop a Mosquitto that an earlier process started on this data folder and left running
        (a `vpp up` killed with SIGKILL, `vpp simulate`): it would keep its old configuration.

        Matched exactly by the configuration file this folder's broker is started with, so no other
        Mosquitto on the machine is touched. Returns the pid it stopped, if any.
        """
        conf = str(self.data_dir / "mosquitto.conf")
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [a.decode(errors="replace") for a in argv if a]
            if len(words) < 3 or Path(words[0]).name != "mosquitto" or words[1:3] != ["-c", conf]:
                continue
            pid = int(proc.name)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)  # lets it save its persistence file
            deadline = time.monotonic() + timeout_s
            while _running(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            return pid
        return None

    @property
    def pid(self) -> int | None:
        """The Mosquitto process this object started (None in-process or when another process runs it)."""
        return self._process.pid if self._process is not None else None

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3):
                return True
        except OSError:
            return False

    def _start_amqtt(self) -> None:
        from amqtt.broker import Broker

        ready = threading.Event()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)  # amqtt 0.12 creates its queues with the thread's current loop
            self._loop = loop
            broker = Broker(config, loop=loop)
            self._amqtt = broker
            loop.run_until_complete(broker.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(broker.shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        # `start()` returns once it listens. No port probe: amqtt never closes the connection of a
        # client that leaves before CONNECT, and its writer then warns when collected.
        if not ready.wait(15):
            raise RuntimeError(f"the embedded amqtt broker did not start on port {self.port}")

    def stop(self, *, hard: bool = False) -> None:
        """Stop the broker: SIGTERM lets Mosquitto save its persistence file; `hard` is a crash."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
                try:
                    self._process.wait(15)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(5)
            if self._process.stderr:
                self._process.stderr.close()
            self._process = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
            self._thread = None
            self._amqtt = None

    def restart(self) -> BrokerInfo:
        self.stop()
        with contextlib.suppress(OSError):
            time.sleep(0.2)
        return self.start()
