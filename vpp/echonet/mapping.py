"""ECHONET Lite property values (EDT bytes) → v1 telemetry readings, in the contract's units and signs.

Each class has its own decoder; all return a :class:`Decoded` with the contract's fields (kW, kWh, %,
count) and the device's state the DR policy needs (mode, power ranges). Sign conventions:

| class               | ECHONET                                 | contract (vpp.domain.devices)      |
|---------------------|-----------------------------------------|------------------------------------|
| 0x0288 meter 0xE7   | + forward (import), − reverse (export)  | same                               |
| 0x0279 PV 0xE0      | generation ≥ 0                          | same                               |
| 0x027D battery 0xD3 | + charging, − discharging               | + discharge, − charge: NEGATED     |
| 0x027E EV 0xD3      | + charging, − discharging (V2H)         | + charging; a discharge left out   |

"No data" sentinels (0x7FFFFFFE for the meter's power, 0xFFFFFFFE for its counters, 0xFFFE/0xFFFF for
16-bit values) and values beyond the MRA's range are left out with a note, never published as numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vpp.echonet.codes import KIND_BY_CLASS, ElClass, Epc, Mode

__all__ = [
    "METER_UNIT_KWH",
    "Decoded",
    "decode",
    "device_id",
    "encode_uint",
    "power_range_w",
    "reading_body",
]

# 0xE1 of the smart meter: code → kWh per count (MRA Release M).
METER_UNIT_KWH: dict[int, float] = {
    0x00: 1.0,
    0x01: 0.1,
    0x02: 0.01,
    0x03: 0.001,
    0x04: 0.0001,
    0x0A: 10.0,
    0x0B: 100.0,
    0x0C: 1000.0,
    0x0D: 10000.0,
}
_CUMULATIVE_KWH_PER_COUNT = 0.001  # PV 0xE1, battery and EV 0xD6/0xD8
_INT32_NO_DATA = frozenset({0x7FFFFFFE, 0x7FFFFFFF, -0x80000000})
_UINT32_NO_DATA = frozenset({0xFFFFFFFE, 0xFFFFFFFF})
_UINT16_NO_DATA = frozenset({0xFFFE, 0xFFFF})
_MAX_COUNTER = 999_999_999
_EV_NOT_CONNECTED = frozenset({0x30, 0xFF})  # 0x30 not connected, 0xFF undefined


@dataclass
class Decoded:
    """One device's poll, decoded. ``fields`` is the reading body without its timestamp."""

    kind: str
    fields: dict[str, float | int] = field(default_factory=dict)
    mode: int | None = None
    charge_range_w: tuple[int, int] | None = None
    discharge_range_w: tuple[int, int] | None = None
    notes: list[str] = field(default_factory=list)


def _uint(edt: bytes | None, size: int, no_data: frozenset[int] = frozenset()) -> int | None:
    if edt is None or len(edt) != size:
        return None
    value = int.from_bytes(edt, "big")
    return None if value in no_data else value


def _int32(edt: bytes | None) -> int | None:
    if edt is None or len(edt) != 4:
        return None
    value = int.from_bytes(edt, "big", signed=True)
    return None if value in _INT32_NO_DATA or abs(value) > _MAX_COUNTER else value


def _measured(decoded: Decoded, name: str, edt: bytes | None, value: int | None) -> int | None:
    """``value`` (decoded from ``edt``), noting why an answered property yields none."""
    if value is None and edt is not None:
        decoded.notes.append(f"{name}: 0x{edt.hex().upper()} is no data, out of range or of the wrong size")
    return value


def encode_uint(value: int, size: int) -> bytes:
    """EDT of an unsigned value (power settings are uint32 W)."""
    return int(value).to_bytes(size, "big")


def power_range_w(edt: bytes | None) -> tuple[int, int] | None:
    """0xDC / 0xDD / 0xC8: uint32 minimum then uint32 maximum, in W; None when absent or inverted."""
    if edt is None or len(edt) != 8:
        return None
    low, high = int.from_bytes(edt[:4], "big"), int.from_bytes(edt[4:], "big")
    return (low, high) if low <= high <= _MAX_COUNTER else None


def _counter(decoded: Decoded, name: str, edt: bytes | None, kwh_per_count: float) -> None:
    count = _uint(edt, 4, _UINT32_NO_DATA)
    if count is None:
        if edt is not None:
            decoded.notes.append(f"{name}: no data")
        return
    if count > _MAX_COUNTER:
        decoded.notes.append(f"{name}: {count} beyond the counter's range")
        return
    decoded.fields[name] = round(count * kwh_per_count, 6)


def _meter(props: Mapping[int, bytes], decoded: Decoded) -> None:
    edt = props.get(Epc.METER_POWER)
    power_w = _measured(decoded, "power_kw", edt, _int32(edt))
    if power_w is not None:
        decoded.fields["power_kw"] = power_w / 1000.0
    unit = props.get(Epc.METER_UNIT)
    unit_kwh = METER_UNIT_KWH.get(unit[0]) if unit is not None and len(unit) == 1 else None
    if unit_kwh is None:
        # Without the unit, a counter could be off by up to 10^8: publish none rather than a guess.
        if props.get(Epc.METER_IMPORT) is not None:
            decoded.notes.append("counters left out: unit 0xE1 missing or unknown")
        return
    coefficient = _uint(props.get(Epc.METER_COEFFICIENT), 4) or 1  # 0xD3 is optional; absent means 1
    _counter(decoded, "import_kwh", props.get(Epc.METER_IMPORT), unit_kwh * coefficient)
    _counter(decoded, "export_kwh", props.get(Epc.METER_EXPORT), unit_kwh * coefficient)


def _pv(props: Mapping[int, bytes], decoded: Decoded) -> None:
    edt = props.get(Epc.PV_POWER)
    power_w = _measured(decoded, "power_kw", edt, _uint(edt, 2, _UINT16_NO_DATA))
    if power_w is not None:
        decoded.fields["power_kw"] = power_w / 1000.0
    _counter(decoded, "energy_kwh", props.get(Epc.PV_ENERGY), _CUMULATIVE_KWH_PER_COUNT)


def _battery(props: Mapping[int, bytes], decoded: Decoded) -> None:
    edt = props.get(Epc.MEASURED_POWER)
    measured_w = _measured(decoded, "power_kw", edt, _int32(edt))
    if measured_w is not None:
        decoded.fields["power_kw"] = -measured_w / 1000.0  # ECHONET + charging; contract + discharge
    _counter(decoded, "discharge_kwh", props.get(Epc.CUMULATIVE_DISCHARGE), _CUMULATIVE_KWH_PER_COUNT)
    _counter(decoded, "charge_kwh", props.get(Epc.CUMULATIVE_CHARGE), _CUMULATIVE_KWH_PER_COUNT)
    edt = props.get(Epc.SOC_PCT)
    soc = _uint(edt, 1)
    soc = _measured(decoded, "soc_pct", edt, soc if soc is not None and soc <= 100 else None)
    if soc is not None:
        decoded.fields["soc_pct"] = float(soc)
    decoded.charge_range_w = power_range_w(props.get(Epc.CHARGE_POWER_RANGE))
    decoded.discharge_range_w = power_range_w(props.get(Epc.DISCHARGE_POWER_RANGE))


def _ev_charger(props: Mapping[int, bytes], decoded: Decoded) -> None:
    edt = props.get(Epc.MEASURED_POWER)
    measured_w = _measured(decoded, "power_kw", edt, _int32(edt))
    if measured_w is not None and measured_w < 0:
        # V2H: the vehicle powers the home. The contract's ev_charger power is charging only (ingest
        # refuses a negative one, and with it the counter and vehicle count of the same reading).
        decoded.notes.append(f"power_kw: V2H discharge {-measured_w} W left out (ev_charger power is charging only)")
    elif measured_w is not None:
        decoded.fields["power_kw"] = measured_w / 1000.0  # + charging in both conventions
    _counter(decoded, "energy_kwh", props.get(Epc.CUMULATIVE_CHARGE), _CUMULATIVE_KWH_PER_COUNT)
    connection = _uint(props.get(Epc.EV_CONNECTION), 1)
    if connection is not None:
        decoded.fields["vehicles"] = 0 if connection in _EV_NOT_CONNECTED else 1
    decoded.charge_range_w = power_range_w(props.get(Epc.EV_CHARGE_POWER_RANGE))


_DECODERS = {
    ElClass.SMART_METER: _meter,
    ElClass.PV: _pv,
    ElClass.BATTERY: _battery,
    ElClass.EV_CHARGER: _ev_charger,
}


def decode(class_code: int, props: Mapping[int, bytes]) -> Decoded:
    """Decode one device's properties (EPC → EDT). ``ValueError`` for a class the gateway does not map."""
    if class_code not in _DECODERS:
        raise ValueError(f"ECHONET class 0x{class_code:04X} is not one the gateway maps")
    decoded = Decoded(KIND_BY_CLASS[class_code])
    _DECODERS[ElClass(class_code)](props, decoded)
    if class_code in (ElClass.BATTERY, ElClass.EV_CHARGER):
        mode = _uint(props.get(Epc.OPERATION_MODE), 1)
        decoded.mode = mode if mode is not None and mode in set(Mode) else None
    return decoded


def reading_body(decoded: Decoded, ts_iso: str) -> dict[str, Any] | None:
    """The v1 JSON reading for a decoded poll, or None when it carries no quantity at all."""
    if not decoded.fields:
        return None
    body: dict[str, Any] = {"ts": ts_iso, **decoded.fields}
    if decoded.mode is not None:
        body["mode"] = Mode(decoded.mode).name.lower()  # diagnostic: ingest ignores unknown fields
    return body


def device_id(class_code: int, node_uid: str, instance: int) -> str:
    """The contract device id of an ECHONET object: ``{kind}-{last 8 hex digits of the node's id}-{instance}``.

    The node's identification number (0x83) survives a DHCP address change, so the id stays stable;
    the gateway logs it at discovery so the site's devices can be registered under it."""
    return f"{KIND_BY_CLASS[class_code]}-{node_uid[-8:]}-{instance}"
