"""Broker redundancy with real Mosquittos: two independent brokers, no bridge, one of them SIGKILLed.

The randomized round (`bench/ha_broker.py`, the broker fault of `vpp bench ha`) kills the
gateways' broker at a seeded moment mid-stream: they move to the other one and resend what is
unconfirmed, nothing is lost or stored twice, a DR signal issued during the fault reaches a site on
the surviving broker, and the restarted broker gets the retained signal back. `VPP_HA_SEED` replays a
round; the seed is printed and in every failure message.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from bench.ha_broker import broker_fault_round, retained_signal
from services.cli.seed import register_simulated_site
from services.dr_scheduler.dispatch import Dispatcher
from services.dr_scheduler.metrics import SchedulerMetrics
from services.gateway.backlog import Backlog
from services.gateway.publisher import GatewayPublisher
from tests.integration.ingest_fixtures import register_depot, running_ingest, scalar
from tests.support.waiting import wait_for
from vpp.domain.dr_events import DrSignal, SignalInterval, signal_payload
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import BrokerAddress, close_client, make_client, parse_broker_urls
from vpp.settings import load_settings
from vpp.simulation.ems_link import SiteEmsLink
from vpp.simulation.model import SiteSimulator, SiteSpec
from vpp.simulation.publisher import SimulationPublisher

pytestmark = pytest.mark.integration


@pytest.fixture
def two_brokers(tmp_path: Path) -> Iterator[list[EmbeddedBroker]]:
    if EmbeddedBroker.mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run `make deps` (it installs Debian's mosquitto)")
    servers = [EmbeddedBroker(tmp_path / f"broker-{i + 1}") for i in range(2)]
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


def _addresses(servers: list[EmbeddedBroker]) -> list[BrokerAddress]:
    return [BrokerAddress("127.0.0.1", s.port) for s in servers]


def test_gateways_fail_over_lose_nothing_and_dr_signals_reach_sites_on_the_surviving_broker(
    db_url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("VPP_HA_SEED") or random.SystemRandom().randrange(1_000_000))
    print(f"broker failover round, seed {seed} (replay: VPP_HA_SEED={seed})")
    result = broker_fault_round(db_url, tmp_path, seed=seed, sites=8, sites_per_gateway=2, readings_per_site=200)
    print(result)
    why = f"seed {seed}: {result}"
    assert result["lost"] == 0, why
    assert result["lost_confirmed"] == 0, why
    assert result["duplicates"] == 0, why
    assert result["confirmed"] == result["published"] == 8 * 200, why
    assert result["stored"] == result["published"], why
    assert result["failover_s"] is not None, why  # every gateway reconnected to the surviving broker
    assert result["ingest_recovery_s"] is not None, why
    assert result["signal_latency_s"] is not None, why  # the signal issued during the fault arrived
    assert result["restarted_broker_has_signal"], why


def test_settings_take_a_broker_list_and_keep_the_single_url(tmp_path: Path) -> None:
    single = load_settings(mqtt_url="mqtt://a:1883", data_dir=tmp_path)
    assert single.broker_urls == ["mqtt://a:1883"]
    both = load_settings(mqtt_urls="mqtt://a:1883, mqtt://b:1884", data_dir=tmp_path)
    assert both.broker_urls == ["mqtt://a:1883", "mqtt://b:1884"]
    assert [(b.host, b.port) for b in parse_broker_urls(",".join(both.broker_urls))] == [("a", 1883), ("b", 1884)]
    with pytest.raises(ValueError, match="VPP_MQTT_URL is not one of VPP_MQTT_URLS"):
        load_settings(mqtt_url="mqtt://c:1883", mqtt_urls="mqtt://a:1883,mqtt://b:1883", data_dir=tmp_path)
    with pytest.raises(ValueError, match="same scheme"):
        load_settings(mqtt_urls="mqtt://a:1883,mqtts://b:8883", data_dir=tmp_path)
    with pytest.raises(ValueError, match="same scheme"):
        parse_broker_urls("mqtt://a:1883,mqtts://b:8883")


def test_simulated_sites_and_their_ems_follow_the_surviving_broker(
    db_url: str, two_brokers: list[EmbeddedBroker]
) -> None:
    """The simulator's gateway and EMS (as `vpp up` runs them) given both brokers: the first dies,
    telemetry keeps being confirmed through the second and a signal issued meanwhile is obeyed."""
    spec = SiteSpec(site_id="depot-a")
    with psycopg.connect(db_url) as conn:
        register_simulated_site(conn, spec)
        conn.commit()
    brokers = _addresses(two_brokers)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    sim = SiteSimulator(spec, start)
    dispatcher = Dispatcher(brokers, SchedulerMetrics(), client_id="ha-sim-dispatcher", resync_settle_s=0.2)
    with running_ingest(db_url, brokers[0].port, more_brokers=(brokers[1],)) as worker:
        assert worker.all_subscribed(10)
        publisher = SimulationPublisher([sim], brokers, client_id="ha-sim", reconnect_min_s=0.1)
        ems = SiteEmsLink(sim, "127.0.0.1", brokers[0].port, more_brokers=brokers[1:], reconnect_min_s=0.1)
        dispatcher.start()
        try:
            assert dispatcher.all_connected(10)
            assert ems.subscribed.wait(10)
            for i in range(1, 4):
                publisher.step(start + timedelta(seconds=10 * i))
            wait_for(lambda: len(publisher.backlog), lambda n: n == 0)
            two_brokers[0].stop(hard=True)
            for i in range(4, 8):
                publisher.step(start + timedelta(seconds=10 * i))
            now = datetime.now(UTC)
            window = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
            signal = DrSignal(
                "ha-ev", 1, "peak_cut", "active", now, (SignalInterval(window, window + timedelta(hours=1), 12.0),)
            )
            dispatcher.publish("depot-a", signal_payload(signal), "active")
            wait_for(lambda: [s.event_id for s in ems.received], lambda ids: "ha-ev" in ids)
            wait_for(lambda: len(publisher.backlog), lambda n: n == 0, timeout_s=30)
            assert publisher.failover is not None
            assert publisher.failover.current == brokers[1]
            assert scalar(db_url, "SELECT count(DISTINCT ts) FROM readings") == 7
        finally:
            publisher.close()
            ems.close()
            dispatcher.stop()


def test_site_gateway_library_moves_to_the_next_broker_and_resends_what_is_unconfirmed(
    two_brokers: list[EmbeddedBroker], tmp_path: Path
) -> None:
    """`services/gateway/publisher.py` (the ECHONET Lite gateway's MQTT side) with two broker URLs."""
    brokers = _addresses(two_brokers)
    received: list[bytes] = []
    lock = threading.Lock()
    watcher = make_client("ha-watcher-2")

    def on_message(_c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with lock:
            received.append(bytes(message.payload))

    watcher.on_connect = lambda c, *_: c.subscribe("vpp/v1/site-c/+/telemetry", qos=1)
    watcher.on_message = on_message
    watcher.connect("127.0.0.1", brokers[1].port)
    watcher.loop_start()
    backlog = Backlog(tmp_path / "backlog.sqlite3")
    publisher = GatewayPublisher("site-c", brokers, backlog, lambda _s: None, confirm_on_puback=False,
                                 reconnect_min_s=0.1)  # fmt: skip
    try:
        assert publisher.connected_event.wait(10)
        assert publisher.failover.current == brokers[0]
        for n in range(5):
            publisher.enqueue("vpp/v1/site-c/meter-1/telemetry", {"ts": f"t{n}", "n": n})
        wait_for(lambda: publisher.inflight, lambda n: n == 0)
        assert received == []  # all went to the first broker
        two_brokers[0].stop(hard=True)
        # Unconfirmed: all sent again, to the second (a repeat is harmless: storage keeps one row).
        wait_for(lambda: len(set(received)), lambda n: n == 5)
        assert publisher.failover.current == brokers[1]
        assert backlog.size() == 5
    finally:
        publisher.close()
        backlog.close()
        close_client(watcher)


def test_site_gateway_library_confirms_on_stored_and_loses_nothing_when_its_broker_dies(
    db_url: str, two_brokers: list[EmbeddedBroker], tmp_path: Path
) -> None:
    """The ECHONET Lite gateway's publisher at the end-to-end level (`--confirm stored`): a message
    leaves its on-disk backlog only once ingest reports every reading in it stored."""
    seed = int(os.environ.get("VPP_HA_SEED") or random.SystemRandom().randrange(1_000_000))
    print(f"gateway library failover, seed {seed} (replay: VPP_HA_SEED={seed})")
    kill_at = random.Random(seed).randrange(20, 80)
    register_depot(db_url)
    brokers = _addresses(two_brokers)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    backlog = Backlog(tmp_path / "backlog.sqlite3")
    with running_ingest(db_url, brokers[0].port, more_brokers=(brokers[1],)) as worker:
        assert worker.all_subscribed(10)
        publisher = GatewayPublisher("depot-a", brokers, backlog, lambda _s: None, confirm_on_puback=False,
                                     reconnect_min_s=0.1, resend_after_s=5.0)  # fmt: skip
        try:
            assert publisher.connected_event.wait(10)
            for n in range(100):
                body = {"ts": (t0 + timedelta(seconds=n)).isoformat(), "power_kw": float(n)}
                publisher.enqueue("vpp/v1/depot-a/meter-1/telemetry", body)
                if n == kill_at:
                    two_brokers[0].stop(hard=True)
                time.sleep(0.01)
            wait_for(backlog.size, lambda n: n == 0, timeout_s=60)
            assert publisher.failover.current == brokers[1], f"seed {seed}"
        finally:
            publisher.close()
            backlog.close()
    rows = scalar(db_url, "SELECT count(*) FROM readings")
    distinct = scalar(db_url, "SELECT count(DISTINCT ts) FROM readings")
    assert (rows, distinct) == (100, 100), f"seed {seed}"


def test_a_restarted_broker_that_lost_its_retained_signals_gets_them_back(
    two_brokers: list[EmbeddedBroker],
) -> None:
    brokers = _addresses(two_brokers)
    dispatcher = Dispatcher(brokers, SchedulerMetrics(), client_id="ha-resync", resync_settle_s=0.2)
    dispatcher.start()
    try:
        assert dispatcher.all_connected(10)
        now = datetime.now(UTC)
        window = (now + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        payload = signal_payload(
            DrSignal("ha-r", 1, "peak_cut", "active", now, (SignalInterval(window, window + timedelta(hours=1), 9.0),))
        )
        dispatcher.publish("site-r", payload, "active")
        # SIGKILL at once: the broker had not saved it (autosave every 10 s), so it comes back without it.
        two_brokers[0].stop(hard=True)
        two_brokers[0].start()
        wait_for(lambda: retained_signal(brokers[0], "site-r", timeout_s=0.5), lambda p: p == payload)
        assert retained_signal(brokers[1], "site-r") == payload
    finally:
        dispatcher.stop()
    # A second dispatcher (a restarted scheduler, or the other instance) learns the state from the brokers.
    two_brokers[1].stop(hard=True)
    two_brokers[1].start()
    successor = Dispatcher(brokers, SchedulerMetrics(), client_id="ha-resync-2", resync_settle_s=0.2)
    successor.start()
    try:
        wait_for(lambda: retained_signal(brokers[1], "site-r", timeout_s=0.5), lambda p: p == payload)
    finally:
        successor.stop()


def test_the_bench_command_runs_a_round_on_its_own_servers() -> None:
    """README's `python -m bench.ha_broker …`, on a small fleet: one JSON line of figures."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.ha_broker", "--sites", "4", "--sites-per-gateway", "2",
         "--readings-per-site", "60", "--seed", "11"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"confirmed", "stored", "lost", "duplicates", "ingest_recovery_s", "signal_latency_s"} <= set(figures)
    assert (figures["lost"], figures["duplicates"], figures["seed"]) == (0, 0, 11), figures


def test_vpp_bench_ha_reports_the_broker_fault_as_a_row() -> None:
    """The row `vpp bench ha` adds for the broker fault: figures carried over, nothing lost or doubled."""
    from bench.ha import broker_fault_report

    report = broker_fault_report(sites=4, seed=12)
    assert report.fault == "broker_sigkill (1 of 2, seed 12)"
    assert report.published >= 4 * 60
    assert report.confirmed == report.stored == report.published, report
    assert (report.lost, report.duplicates, report.problems) == (0, 0, []), report
    assert report.dr_signal_s < 60
