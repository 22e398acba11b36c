"""The ECHONET Lite gateway against emulated devices (uecho) in network namespaces, with a real Mosquitto.

Every ECHONET Lite packet stays inside the two namespaces the `lan` fixture creates; only the MQTT side
uses the host's loopback.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.echonet.conftest import SITE, RunningGateway, Watcher
from tests.support.waiting import wait_for
from vpp.domain.dr_events import DrSignal, SignalInterval, signal_payload
from vpp.echonet import mapping
from vpp.echonet.codes import ElClass
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import dr_signal_topic
from vpp.simulation.echonet_home import EmulatedHome, HomeState

pytestmark = pytest.mark.integration

KINDS = {"meter", "pv", "battery", "ev_charger"}


def site_balance_error_kw(watcher: Watcher, home: EmulatedHome) -> float:
    """Site load from the published readings (grid + pv + battery, DESIGN.md) minus the home's real load.

    The contract's load includes EV charging; a wrong sign or unit anywhere in the three makes this
    kilowatts off, so it is how the tests catch a mapping mistake."""
    meter, pv, battery = (watcher.latest(kind) for kind in ("meter", "pv", "battery"))
    assert meter
    assert pv
    assert battery
    published_load_kw = float(meter["power_kw"] + pv["power_kw"] + battery["power_kw"])
    return published_load_kw - (home.state.load_w + home.state.ev_w) / 1000.0


def send_signal(watcher: Watcher, limit_kw: float | None, *, revision: int = 1, status: str = "active") -> None:
    now = datetime.now(UTC)
    interval = SignalInterval(now - timedelta(minutes=1), now + timedelta(minutes=29), limit_kw)
    signal = DrSignal("evt-echonet", revision, "peak_cut", status, now,
                      (interval,) if status == "active" else ())  # fmt: skip
    watcher.client.publish(dr_signal_topic(SITE), signal_payload(signal), qos=1, retain=True).wait_for_publish(5)


def ack_for(watcher: Watcher, revision: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        with watcher.lock:
            return next((a for a in watcher.acks if a["revision"] == revision), None)

    found = wait_for(probe, lambda a: a is not None, timeout_s=20)
    assert found is not None
    return found


@pytest.fixture
def home_state() -> HomeState:
    # The battery already discharges 1 kW, so a sign error in its mapping shows as a 2 kW imbalance.
    return HomeState(load_w=3000.0, pv_w=500.0)


def settle(watcher: Watcher, home: EmulatedHome) -> None:
    """Wait until the latest readings agree with the home within a poll's drift."""
    wait_for(lambda: watcher.devices(), lambda d: {x.split("-")[0] for x in d} >= KINDS, timeout_s=20)
    wait_for(lambda: abs(site_balance_error_kw(watcher, home)), lambda e: e < 0.05, timeout_s=10)


def test_discovery_and_periodic_reads_in_contract_units_and_signs(
    home: EmulatedHome, gateway: RunningGateway, watcher: Watcher
) -> None:
    home.battery.set_property_data(0xEC, (1000).to_bytes(4, "big"))
    home.battery.set_property_data(0xDA, b"\x43")  # discharging 1 kW before the gateway touches it
    settle(watcher, home)
    kinds = {device.split("-")[0] for device in watcher.devices()}
    assert kinds == KINDS, "every device class discovered over multicast"
    polls_before = gateway.gateway.polls
    count_before = len(watcher.telemetry)
    time.sleep(4 * 0.5 + 0.3)
    assert gateway.gateway.polls >= polls_before + 3, "periodic reads"
    assert len(watcher.telemetry) >= count_before + 3 * 4
    battery, meter, pv, ev = (watcher.latest(k) for k in ("battery", "meter", "pv", "ev_charger"))
    assert battery
    assert meter
    assert pv
    assert ev
    assert battery["power_kw"] == pytest.approx(1.0)  # + discharge in the contract
    assert battery["soc_pct"] == pytest.approx(home.state.soc_pct, abs=1)
    assert battery["mode"] == "discharging"
    assert meter["power_kw"] == pytest.approx(home.state.grid_w / 1000.0, abs=0.01)
    assert meter["import_kwh"] == pytest.approx(home.state.imported_wh / 1000.0, abs=0.2)  # 0.1 kWh counts
    assert pv["power_kw"] == 0.5
    assert pv["energy_kwh"] == pytest.approx(home.state.pv_generated_wh / 1000, abs=0.01)
    assert ev["power_kw"] == 6.0
    assert ev["vehicles"] == 1
    assert abs(site_balance_error_kw(watcher, home)) < 0.05


def test_a_sign_mistake_in_the_mapping_is_caught(
    home: EmulatedHome, gateway: RunningGateway, watcher: Watcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check above is not vacuous: with ECHONET's battery sign taken as the contract's, it fails."""
    original = mapping._battery

    def unflipped(props: Any, decoded: mapping.Decoded) -> None:
        original(props, decoded)
        if "power_kw" in decoded.fields:
            decoded.fields["power_kw"] = -decoded.fields["power_kw"]  # the mistake: + charging kept

    monkeypatch.setitem(mapping._DECODERS, ElClass.BATTERY, unflipped)
    home.battery.set_property_data(0xEC, (1000).to_bytes(4, "big"))
    home.battery.set_property_data(0xDA, b"\x43")
    wait_for(lambda: watcher.latest("battery"), lambda b: b is not None and b["power_kw"] == -1.0, timeout_s=20)
    wait_for(lambda: watcher.devices(), lambda d: {x.split("-")[0] for x in d} >= KINDS, timeout_s=20)
    assert abs(site_balance_error_kw(watcher, home)) == pytest.approx(2.0, abs=0.05)


def test_peak_cut_makes_the_battery_discharge_and_cancel_releases_it(
    home: EmulatedHome, gateway: RunningGateway, watcher: Watcher
) -> None:
    settle(watcher, home)
    assert home.state.grid_w == pytest.approx(8500)  # 3 kW load + 6 kW EV − 0.5 kW PV
    send_signal(watcher, limit_kw=1.0)
    ack = ack_for(watcher, 1)
    assert ack["status"] == "accepted", ack
    assert "discharge 3000 W" in ack["detail"]
    assert "charging limited to 1500 W" in ack["detail"]
    wait_for(lambda: home.state.battery_w, lambda w: w == -3000.0, timeout_s=5)  # ECHONET sign: discharging
    assert home.state.ev_w == 1500.0
    assert home.state.grid_w <= 1000.0 + 1.0
    wait_for(lambda: watcher.latest("battery"), lambda b: b is not None and b["power_kw"] == 3.0, timeout_s=5)
    send_signal(watcher, None, revision=2, status="cancelled")
    assert ack_for(watcher, 2)["status"] == "accepted"
    wait_for(lambda: home.battery.get_property_data(0xDA), lambda m: m == b"\x46", timeout_s=10)
    wait_for(lambda: home.state.ev_w, lambda w: w == 6000.0, timeout_s=5)


@pytest.fixture
def refusing_state() -> HomeState:
    return HomeState(refuse_epcs={0xDA})


def test_a_refused_write_is_acknowledged_as_rejected_with_the_reason(
    lan: Any, broker: EmbeddedBroker, watcher: Watcher, refusing_state: HomeState, request: pytest.FixtureRequest
) -> None:
    home = EmulatedHome(lan.device_ns, lan.device_ips, refusing_state).start()
    try:
        gateway: RunningGateway = request.getfixturevalue("gateway")
        settle(watcher, home)
        send_signal(watcher, limit_kw=1.0)
        ack = ack_for(watcher, 1)
        # uecho answers the refused SETC with 0x50, which pychonet counts as success: the read-back catches it.
        assert ack["status"] == "rejected"
        assert "mode discharging: refused" in ack["detail"], ack
        assert "device holds 0x46" in ack["detail"], ack
        assert home.state.battery_w == 0.0
        assert any(o.status == "refused" for o in gateway.gateway.outcomes)
    finally:
        home.stop()


def test_a_device_that_disappears_and_returns(home: EmulatedHome, gateway: RunningGateway, watcher: Watcher) -> None:
    settle(watcher, home)
    battery_node = home.nodes[2]
    battery_node.stop()
    inst = next(i for i in gateway.gateway.instances.values() if i.device_id.startswith("battery-"))
    wait_for(lambda: inst.online, lambda online: not online, timeout_s=10)
    gone_at = len(watcher.telemetry)
    time.sleep(2.0)
    with watcher.lock:
        during = [d for d, _ in watcher.telemetry[gone_at:] if d.startswith("battery-")]
        others = [d for d, _ in watcher.telemetry[gone_at:] if d.startswith("meter-")]
    assert during == [], "nothing invented for the missing device"
    assert others, "the other devices go on"
    # While it is gone the EV charger alone answers the signal, and the ack says what is not covered.
    send_signal(watcher, limit_kw=1.0)
    ack = ack_for(watcher, 1)
    assert ack["status"] == "accepted", ack
    assert "mode standby" in ack["detail"], ack
    assert "1.50 kW beyond the devices' ranges" in ack["detail"], ack
    battery_node.start()
    wait_for(lambda: inst.online, lambda online: online, timeout_s=15)
    # Back: it takes the 1.5 kW the EV charger could not (3 kW load − 0.5 kW PV − 1 kW limit).
    wait_for(lambda: home.state.battery_w, lambda w: w == -1500.0, timeout_s=10)
    wait_for(lambda: watcher.latest("battery"), lambda b: b is not None and b["power_kw"] == 1.5, timeout_s=5)


def test_a_write_that_times_out_is_reported(home: EmulatedHome, gateway: RunningGateway, watcher: Watcher) -> None:
    settle(watcher, home)
    home.nodes[2].ignore_esv = {0x61}  # the battery answers reads but never a SETC
    send_signal(watcher, limit_kw=1.0)
    ack = ack_for(watcher, 1)
    assert ack["status"] == "rejected"
    assert "discharge 3000 W: timeout (no answer within 1 s)" in ack["detail"], ack
    assert home.state.battery_w == 0.0


BROKER_DOWN_S = float(os.environ.get("VPP_TEST_BROKER_DOWN_S", "20"))


@pytest.mark.slow
def test_broker_down_nothing_lost(
    home: EmulatedHome, gateway: RunningGateway, watcher: Watcher, broker: EmbeddedBroker
) -> None:
    """Broker stopped for BROKER_DOWN_S (20 s in CI; VPP_TEST_BROKER_DOWN_S=60 for the full minute)."""
    settle(watcher, home)
    broker.stop()
    time.sleep(BROKER_DOWN_S)
    held = gateway.backlog.size()
    assert held >= 4 * int(BROKER_DOWN_S / 0.5 * 0.7), f"the readings taken while offline are on disk ({held})"
    broker.start()
    wait_for(lambda: gateway.backlog.size(), lambda n: n <= 8, timeout_s=60)
    enqueued = set(gateway.enqueued[: len(gateway.enqueued) - 8])  # the last poll may still be in flight
    missing = wait_for(lambda: enqueued - watcher.keys(), lambda m: not m, timeout_s=20)
    assert not missing
    assert gateway.backlog.dropped() == 0
