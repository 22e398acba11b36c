"""The platform `vpp bench ha` kills servers of: a pg_auto_failover formation, Mosquitto, two ingest
workers and two schedulers as processes, and a fleet of site gateways publishing into it.

Every service gets the formation's multi-host URL (``target_session_attrs=read-write``) and nothing
else: riding over a failover is their job, not the harness's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from bench.ha_formation import Formation
from vpp.embedded.broker import EmbeddedBroker
from vpp.gateway_backlog import ConfirmationBacklog
from vpp.mqtt import close_client, dr_signal_topic, make_client, session_properties, stored_topic, telemetry_topic

__all__ = ["Fleet", "HaPlatform", "Key"]

ROOT = Path(__file__).resolve().parents[1]
Key = tuple[str, str, datetime]


class HaPlatform:
    """Servers and services, each a process of its own that a fault may SIGKILL."""

    def __init__(self, workdir: Path, formation: Formation, broker: EmbeddedBroker) -> None:
        self.workdir = workdir
        self.formation = formation
        self.broker = broker
        self.db_url = formation.url()
        self.workers: list[subprocess.Popen[bytes] | None] = [None, None]
        self.schedulers: list[subprocess.Popen[bytes] | None] = [None, None]
        self.killed_node = ""  # what the last fault killed, for its restore
        self.killed_scheduler = 0
        self._log = (workdir / "services.log").open("ab")

    def _env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            # Private, anonymous servers: the development placeholders stand in for the secrets.
            "VPP_ENVIRONMENT": "development",
            "VPP_DATABASE_URL": self.db_url,
            "VPP_MQTT_URL": f"mqtt://127.0.0.1:{self.broker.port}",
            **extra,
        }

    def _spawn(self, module: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env=env, stdout=self._log, stderr=self._log)

    def start_worker(self, index: int) -> None:
        self.workers[index] = self._spawn(
            "services.ingest",
            self._env(
                VPP_INGEST_CLIENT_ID=f"ingest-ha-{index}",
                VPP_INGEST_PARTITION=str(index),
                VPP_INGEST_PARTITIONS="2",
                VPP_INGEST_METRICS_PORT="0",
                VPP_INGEST_BATCH_MAX_WAIT_MS="50",
                VPP_INGEST_CONFIRM_REPLICATED="true",  # as deploy/ha/README.md asks of an HA layout
            ),
        )

    def start_scheduler(self, index: int) -> None:
        self.schedulers[index] = self._spawn(
            "services.dr_scheduler",
            self._env(
                VPP_SCHEDULER_INSTANCE=f"ha-{index}",
                VPP_SCHEDULER_METRICS_PORT="0",
                VPP_SCHEDULER_TICK_S="1",
                VPP_SCHEDULER_LEASE_POLL_S="0.5",
            ),
        )

    def leading_scheduler(self) -> int | None:
        """Which scheduler holds the lease, read from the database (its lease session's name)."""
        with suppress(psycopg.Error), psycopg.connect(self.db_url, autocommit=True, connect_timeout=2) as conn:
            row = conn.execute(
                """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                   WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'dr-scheduler-lease:%'"""
            ).fetchone()
            if row is not None:
                return int(str(row[0]).rsplit("-", 1)[1])
        return None

    @staticmethod
    def sigkill(process: subprocess.Popen[bytes] | None) -> None:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def close(self) -> None:
        for process in [*self.workers, *self.schedulers]:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        self._log.close()


class Fleet:
    """Site gateways: each site publishes numbered readings of one meter (QoS 1, persistent sessions) and
    resends what the `stored` topic has not confirmed, as the gateway software does. Sites share a few
    MQTT connections (one per `sites_per_client`), so 2,000 sites do not need 2,000 threads here.
    Each site also listens to its DR signal topic, to time a signal from issue to arrival."""

    def __init__(self, site_ids: list[str], port: int, sites_per_client: int = 100) -> None:
        self.site_ids = site_ids
        self.backlog = ConfirmationBacklog(max_readings=10_000_000)
        self.confirmed: set[Key] = set()
        self.signals: dict[str, list[tuple[float, bytes]]] = {}
        self._lock = threading.Lock()
        self._clients: list[mqtt.Client] = []
        self._connected: list[threading.Event] = []
        self._client_of: dict[str, mqtt.Client] = {}
        for start in range(0, len(site_ids), sites_per_client):
            group = site_ids[start : start + sites_per_client]
            index = len(self._clients)
            client = make_client(f"gw-ha-{index}", max_inflight=0)
            client.reconnect_delay_set(min_delay=0.05, max_delay=1.0)  # type: ignore[arg-type]
            connected = threading.Event()
            client.on_connect = self._on_connect_for(group, connected)
            client.on_message = self._on_message
            client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False, properties=session_properties())
            client.loop_start()
            self._clients.append(client)
            self._connected.append(connected)
            for site in group:
                self._client_of[site] = client

    def _on_connect_for(self, group: list[str], connected: threading.Event) -> Any:
        def on_connect(client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                return
            for site in group:
                client.subscribe(stored_topic(site), qos=1)
                client.subscribe(dr_signal_topic(site), qos=1)
            connected.set()

        return on_connect

    def wait_connected(self, timeout_s: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout_s
        return all(event.wait(max(0.0, deadline - time.monotonic())) for event in self._connected)

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        site, payload = parts[2], bytes(message.payload)
        if parts[3:] == ["dr", "signal"]:
            with self._lock:
                self.signals.setdefault(site, []).append((time.monotonic(), payload))
            return
        self.backlog.confirm(site, payload)
        with suppress(ValueError, KeyError, TypeError, AttributeError):
            stored = json.loads(payload)["stored"]
            keys = {(site, d, datetime.fromisoformat(ts)) for d, stamps in stored.items() for ts in stamps}
            with self._lock:
                self.confirmed |= keys

    def publish(self, site_id: str, device_id: str, ts: datetime, counter_kwh: float, power_kw: float) -> Key:
        reading = {"ts": ts.isoformat(), "power_kw": power_kw, "import_kwh": counter_kwh}
        self.backlog.add(site_id, device_id, reading)
        self._client_of[site_id].publish(telemetry_topic(site_id, device_id), json.dumps(reading), qos=1)
        return (site_id, device_id, ts)

    def resend(self, older_than_s: float) -> int:
        """Resend what is unconfirmed after `older_than_s` (a broker that lost it, a confirmation lost)."""
        due = self.backlog.due(older_than_s=older_than_s)
        for pending in due:
            body = json.dumps({"readings": pending.readings})
            self._client_of[pending.site_id].publish(telemetry_topic(pending.site_id, pending.device_id), body, qos=1)
        return len(due)

    def signal_arrival(self, site_id: str, event_id: str) -> float | None:
        """When (monotonic) the first signal naming `event_id` reached the site."""
        with self._lock:
            for at, payload in self.signals.get(site_id, []):
                if event_id.encode() in payload:
                    return at
        return None

    def close(self) -> None:
        for client in self._clients:
            close_client(client)
