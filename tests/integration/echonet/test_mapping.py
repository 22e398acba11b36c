"""ECHONET Lite EDT bytes → the v1 reading the gateway publishes, checked against ingest's own validation.

No network: a reading the gateway builds must be one ingest stores, or it is never confirmed and waits in
the site's backlog until the bound drops it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from vpp.domain.devices import DeviceKind
from vpp.domain.telemetry import Limits, Rejection, decode_payload, validate_reading
from vpp.echonet.codes import ElClass, Epc
from vpp.echonet.mapping import decode, reading_body


def _s32(value: int) -> bytes:
    return value.to_bytes(4, "big", signed=True)


def _stored(kind: DeviceKind, body: dict[str, object]) -> object:
    now = datetime.now(UTC)
    raws = decode_payload(json.dumps(body).encode(), received_at=now, max_bytes=65536)
    assert not isinstance(raws, Rejection), raws
    (raw,) = raws
    return validate_reading(raw, kind, now=now, limits=Limits())


def test_a_v2h_charger_discharging_into_the_home_publishes_a_reading_ingest_stores() -> None:
    """0x027E's 0xD3 is − while the vehicle powers the home (V2H). The contract's ev_charger power is
    charging only, so the gateway must not send a discharge ingest refuses: the counter and the vehicle
    count still arrive, and the left-out value is noted (logged)."""
    props: dict[int, bytes] = {
        Epc.MEASURED_POWER: _s32(-3000),
        Epc.CUMULATIVE_CHARGE: (12_345).to_bytes(4, "big"),
        Epc.EV_CONNECTION: b"\x43",  # connected, chargeable and dischargeable
    }
    decoded = decode(ElClass.EV_CHARGER, props)
    body = reading_body(decoded, datetime.now(UTC).isoformat(timespec="milliseconds"))
    assert body is not None
    stored = _stored(DeviceKind.EV_CHARGER, body)
    assert not isinstance(stored, Rejection), stored
    assert body["energy_kwh"] == 12.345
    assert body["vehicles"] == 1
    assert "power_kw" not in body
    assert any("discharg" in note for note in decoded.notes), decoded.notes


def test_an_ev_charger_charging_keeps_its_power() -> None:
    decoded = decode(ElClass.EV_CHARGER, {Epc.MEASURED_POWER: _s32(6000), Epc.EV_CONNECTION: b"\x41"})
    assert decoded.fields == {"power_kw": 6.0, "vehicles": 1}
    assert decoded.notes == []


def test_values_outside_the_mra_range_or_of_the_wrong_size_are_left_out_with_a_note() -> None:
    """The module's promise: never published as numbers, and never silently: each leaves a (logged) note."""
    battery = decode(
        ElClass.BATTERY,
        {Epc.MEASURED_POWER: _s32(1_500_000_000), Epc.SOC_PCT: bytes([150]), Epc.CUMULATIVE_CHARGE: b"\x00\x01"},
    )
    assert battery.fields == {}
    assert len(battery.notes) == 3, battery.notes
    meter = decode(ElClass.SMART_METER, {Epc.METER_POWER: b"\x01\x00"})
    assert meter.fields == {}
    assert len(meter.notes) == 1, meter.notes
