"""ECHONET Lite → v1 contract: units, signs, no-data sentinels, and the DR policy's writes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vpp.domain.devices import DeviceKind
from vpp.domain.dr_events import DrSignal, SignalInterval
from vpp.domain.telemetry import Limits, Reading, decode_payload, validate_reading
from vpp.echonet.codes import ElClass, Epc, Mode
from vpp.echonet.control import DeviceView, interval_at, plan_writes, release_writes
from vpp.echonet.mapping import decode, power_range_w, reading_body


def s32(value: int) -> bytes:
    return value.to_bytes(4, "big", signed=True)


def u(value: int, size: int = 4) -> bytes:
    return value.to_bytes(size, "big")


def test_battery_power_sign_is_flipped_and_counters_are_kwh() -> None:
    # ECHONET 0xD3: −1500 W means DISCHARGING; the contract's battery power is + discharge.
    decoded = decode(ElClass.BATTERY, {Epc.MEASURED_POWER: s32(-1500), Epc.CUMULATIVE_DISCHARGE: u(2345),
                                       Epc.CUMULATIVE_CHARGE: u(1234), Epc.SOC_PCT: u(61, 1),
                                       Epc.OPERATION_MODE: b"\x43"})  # fmt: skip
    assert decoded.fields == {"power_kw": 1.5, "discharge_kwh": 2.345, "charge_kwh": 1.234, "soc_pct": 61.0}
    assert decoded.mode == Mode.DISCHARGING
    charging = decode(ElClass.BATTERY, {Epc.MEASURED_POWER: s32(800)})
    assert charging.fields["power_kw"] == -0.8


def test_meter_counters_use_the_unit_and_coefficient() -> None:
    props: dict[int, bytes] = {Epc.METER_POWER: s32(-2500), Epc.METER_IMPORT: u(1234), Epc.METER_EXPORT: u(56),
                              Epc.METER_UNIT: b"\x01", Epc.METER_COEFFICIENT: u(10)}  # fmt: skip
    decoded = decode(ElClass.SMART_METER, props)
    # 0x01 = 0.1 kWh per count, coefficient 10: 1234 counts = 1234 kWh; − export stays negative power.
    assert decoded.fields == {"power_kw": -2.5, "import_kwh": 1234.0, "export_kwh": 56.0}
    without_coefficient = decode(ElClass.SMART_METER, {**props, Epc.METER_COEFFICIENT: b""} | {})
    assert without_coefficient.fields["import_kwh"] == pytest.approx(123.4)


def test_meter_without_unit_publishes_power_but_no_counter() -> None:
    decoded = decode(ElClass.SMART_METER, {Epc.METER_POWER: s32(100), Epc.METER_IMPORT: u(1234)})
    assert decoded.fields == {"power_kw": 0.1}
    assert "unit 0xE1" in decoded.notes[0]


def test_no_data_sentinels_are_left_out() -> None:
    decoded = decode(ElClass.SMART_METER, {Epc.METER_POWER: u(0x7FFFFFFE), Epc.METER_IMPORT: u(0xFFFFFFFE),
                                           Epc.METER_UNIT: b"\x02"})  # fmt: skip
    assert decoded.fields == {}
    assert reading_body(decoded, "2026-12-04T10:00:00+00:00") is None
    pv = decode(ElClass.PV, {Epc.PV_POWER: u(0xFFFE, 2), Epc.PV_ENERGY: u(7777)})
    assert pv.fields == {"energy_kwh": 7.777}


def test_ev_charger_power_vehicles_and_range() -> None:
    decoded = decode(ElClass.EV_CHARGER, {Epc.MEASURED_POWER: s32(6000), Epc.CUMULATIVE_CHARGE: u(5000),
                                          Epc.EV_CONNECTION: b"\x41", Epc.EV_CHARGE_POWER_RANGE: u(1400) + u(6000)})  # fmt: skip
    assert decoded.fields == {"power_kw": 6.0, "energy_kwh": 5.0, "vehicles": 1}
    assert decoded.charge_range_w == (1400, 6000)
    assert decode(ElClass.EV_CHARGER, {Epc.EV_CONNECTION: b"\x30"}).fields == {"vehicles": 0}
    assert power_range_w(u(5000) + u(100)) is None  # inverted range: not trusted


def test_unknown_class_is_refused() -> None:
    with pytest.raises(ValueError, match="0x0130"):
        decode(0x0130, {})


NOW = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def signal(limit: float | None, floor: float | None = None, status: str = "active") -> DrSignal:
    interval = SignalInterval(NOW - timedelta(minutes=5), NOW + timedelta(minutes=25), limit, floor)
    return DrSignal("ev-1", 2, "peak_cut", status, NOW, (interval,))


BATTERY = DeviceView("battery-1", 0.0, Mode.AUTOMATIC, (100, 3000), (100, 3000))
EV = DeviceView("ev-1", 6.0, Mode.CHARGING, (1400, 6000))


def test_peak_cut_discharges_the_battery_then_limits_the_ev() -> None:
    interval = interval_at(signal(1.0), NOW)
    assert interval is not None
    writes, short_kw = plan_writes(interval, grid_kw=8.5, battery=BATTERY, ev=EV)
    assert [(w.device_id, w.epc, w.edt) for w in writes] == [
        ("battery-1", Epc.DISCHARGE_POWER_SETTING, (3000).to_bytes(4, "big")),  # W, never 0xAB's Wh
        ("battery-1", Epc.OPERATION_MODE, bytes([Mode.DISCHARGING])),
        ("ev-1", Epc.CHARGE_POWER_SETTING, (1500).to_bytes(4, "big")),
        ("ev-1", Epc.OPERATION_MODE, bytes([Mode.CHARGING])),
    ]
    assert short_kw == 0.0


def test_peak_cut_counts_the_battery_already_discharging() -> None:
    # The meter already shows the battery's 3 kW discharge: the idle import is grid + battery = 4 kW.
    interval = interval_at(signal(1.0), NOW)
    assert interval is not None
    discharging = DeviceView("battery-1", 3.0, Mode.DISCHARGING, (100, 3000), (100, 3000))
    writes, short_kw = plan_writes(interval, grid_kw=1.0, battery=discharging, ev=None)
    assert writes[0].edt == (3000).to_bytes(4, "big")
    assert short_kw == 0.0


def test_ev_below_its_minimum_goes_to_standby_and_shortfall_is_reported() -> None:
    interval = interval_at(signal(0.0), NOW)
    assert interval is not None
    writes, short_kw = plan_writes(interval, grid_kw=10.0, battery=BATTERY, ev=EV)
    assert writes[-1].epc == Epc.OPERATION_MODE
    assert writes[-1].edt == bytes([Mode.STANDBY])
    assert short_kw == pytest.approx(1.0)  # 10 − 3 (battery) − 6 (EV stopped)


def test_floor_charges_the_battery_within_its_range() -> None:
    interval = interval_at(signal(None, floor=9.0), NOW)
    assert interval is not None
    writes, short_kw = plan_writes(interval, grid_kw=2.0, battery=BATTERY, ev=None)
    assert writes[0].epc == Epc.CHARGE_POWER_SETTING
    assert writes[0].edt == (3000).to_bytes(4, "big")
    assert short_kw == pytest.approx(4.0)


def test_outside_the_interval_and_after_the_signal() -> None:
    assert interval_at(signal(1.0), NOW + timedelta(hours=1)) is None
    assert interval_at(signal(1.0, status="cancelled"), NOW) is None
    writes = release_writes(BATTERY, EV)
    assert [(w.device_id, w.edt) for w in writes] == [
        ("battery-1", bytes([Mode.AUTOMATIC])),
        ("ev-1", (6000).to_bytes(4, "big")),
        ("ev-1", bytes([Mode.CHARGING])),
    ]


@pytest.mark.parametrize(
    ("class_code", "props", "kind", "stored"),
    [
        (ElClass.BATTERY, {Epc.MEASURED_POWER: s32(-2000), Epc.CUMULATIVE_DISCHARGE: u(10), Epc.SOC_PCT: u(40, 1),
                           Epc.OPERATION_MODE: b"\x43"}, "battery", (2.0, 0.01, None, 40.0, None)),
        (ElClass.SMART_METER, {Epc.METER_POWER: s32(-700), Epc.METER_IMPORT: u(5), Epc.METER_EXPORT: u(7),
                               Epc.METER_UNIT: b"\x00"}, "meter", (-0.7, 5.0, 7.0, None, None)),
        (ElClass.PV, {Epc.PV_POWER: u(3200, 2), Epc.PV_ENERGY: u(1500)}, "pv", (3.2, 1.5, None, None, None)),
        (ElClass.EV_CHARGER, {Epc.MEASURED_POWER: s32(3000), Epc.CUMULATIVE_CHARGE: u(900),
                              Epc.EV_CONNECTION: b"\x42"}, "ev_charger", (3.0, 0.9, None, None, 1)),
    ],
)  # fmt: skip
def test_gateway_bodies_pass_ingest_validation_with_the_same_meaning(
    class_code: int, props: dict[int, bytes], kind: str, stored: tuple[Any, ...]
) -> None:
    """What ingest stores from a gateway reading is what the device measured, in the contract's terms."""
    body = reading_body(decode(class_code, props), NOW.isoformat())
    assert body is not None
    raw = decode_payload(json.dumps(body).encode(), received_at=NOW, max_bytes=65536)
    assert isinstance(raw, list)
    reading = validate_reading(raw[0], DeviceKind(kind), now=NOW, limits=Limits())
    assert isinstance(reading, Reading), reading
    got: tuple[Any, ...] = (
        reading.power_kw, reading.energy_pos_kwh, reading.energy_neg_kwh, reading.soc_pct, reading.vehicles,
    )  # fmt: skip
    assert got == (
        pytest.approx(stored[0]), pytest.approx(stored[1]) if stored[1] is not None else None,
        pytest.approx(stored[2]) if stored[2] is not None else None, stored[3], stored[4],
    )  # fmt: skip
