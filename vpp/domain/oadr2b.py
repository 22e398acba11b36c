"""OpenADR 2.0b ⇄ the platform's OpenADR 3.1 events and USAGE reports, as pure functions.

The 2.0b VTN serves the events the scheduler publishes for the 3.1 VTN (`vpp.domain.openadr.dr_event_body`),
so this module translates one 3.1 event body into the one 2.0b signal it carries, and a 2.0b
TELEMETRY_USAGE report's values back into a 3.1 USAGE report body, which verification already reads.

Mapping (OpenADR 2.0b Profile Specification, Appendix "Signal names and types"; JSCA's DR interface
specification uses the same signals):

- ``IMPORT_CAPACITY_LIMIT`` / ``DISPATCH_SETPOINT`` (kW per slot) → ``LOAD_DISPATCH``, type ``setpoint``,
  itemBase powerReal in kW. 2.0b has one dispatch signal for both a ceiling and a floor; which one the
  scheduler meant is kept in the event's ``vtnComment``.
- ``SIMPLE`` levels → ``SIMPLE``, type ``level``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from vpp.domain.dr_events import SignalInterval
from vpp.domain.openadr import SLOT, parse_duration

__all__ = [
    "Signal2b",
    "event_intervals",
    "event_status",
    "kwh_per_unit",
    "signal_from_event_body",
    "signal_from_json",
    "usage_report_body",
    "usage_slots",
]

_SIGNALS = {
    "IMPORT_CAPACITY_LIMIT": ("LOAD_DISPATCH", "setpoint", "KW"),
    "DISPATCH_SETPOINT": ("LOAD_DISPATCH", "setpoint", "KW"),
    "SIMPLE": ("SIMPLE", "level", None),
}
# energyReal is reported in Wh with an SI scale code (2.0b schema, "siScaleCodeType").
_SCALE = {"none": 1.0, "k": 1e3, "M": 1e6}


@dataclass(frozen=True, slots=True)
class Signal2b:
    """One 2.0b event signal: equal 30-minute intervals from `start_at`, one value each."""

    signal_name: str
    signal_type: str
    units: str | None  # "KW" for LOAD_DISPATCH, None for SIMPLE levels
    start_at: datetime
    values: tuple[float, ...]
    payload_type: str  # the 3.1 payload it came from
    event_name: str  # the 3.1 eventName (carries the scheduler's revision)

    @property
    def end_at(self) -> datetime:
        return self.start_at + SLOT * len(self.values)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["start_at"] = self.start_at.isoformat()
        out["values"] = list(self.values)
        return out


def signal_from_json(data: Mapping[str, Any]) -> Signal2b:
    return Signal2b(
        str(data["signal_name"]),
        str(data["signal_type"]),
        data.get("units"),
        datetime.fromisoformat(data["start_at"]),
        tuple(float(v) for v in data["values"]),
        str(data["payload_type"]),
        str(data["event_name"]),
    )


def signal_from_event_body(body: Mapping[str, Any]) -> Signal2b:
    """The 2.0b signal of a scheduler-published 3.1 event body; ValueError for a body of another shape."""
    descriptors: list[Mapping[str, Any]] = list(body.get("payloadDescriptors") or [])
    if len(descriptors) != 1 or descriptors[0].get("payloadType") not in _SIGNALS:
        raise ValueError("not one payload the 2.0b VTN can carry")
    payload_type = str(descriptors[0]["payloadType"])
    name, kind, units = _SIGNALS[payload_type]
    period = body.get("intervalPeriod") or {}
    if not period.get("start") or parse_duration(period.get("duration") or "PT0S") != SLOT:
        raise ValueError("the event must have 30-minute intervals from a start")
    start = datetime.fromisoformat(period["start"])
    if start.tzinfo is None:
        raise ValueError("the event start must carry an offset")
    values: list[float] = []
    for interval in body.get("intervals") or ():
        if interval.get("intervalPeriod"):
            raise ValueError("intervals with their own period are not carried")
        payloads = [p for p in interval.get("payloads") or () if p.get("type") == payload_type]
        if len(payloads) != 1 or not payloads[0].get("values"):
            raise ValueError(f"interval {interval.get('id')} has no {payload_type} value")
        values.append(float(payloads[0]["values"][0]))
    if not values:
        raise ValueError("the event has no intervals")
    return Signal2b(name, kind, units, start, tuple(values), payload_type, str(body.get("eventName") or ""))


def event_status(signal: Signal2b, now: datetime, *, cancelled: bool = False) -> str:
    """The 2.0b eventStatus at `now`: far, active, completed (or cancelled)."""
    if cancelled:
        return "cancelled"
    if now < signal.start_at:
        return "far"
    return "active" if now < signal.end_at else "completed"


def kwh_per_unit(unit: str | None, scale: str | None) -> float:
    """kWh per reported value of an energyReal measurement in `unit` with SI `scale` (Wh, scale k → 1)."""
    if unit != "Wh":
        raise ValueError(f"usage must be energy in Wh, not {unit!r}")
    key = scale or "none"
    if key not in _SCALE:
        raise ValueError(f"unsupported SI scale {scale!r}; supported: {', '.join(_SCALE)}")
    return _SCALE[key] / 1e3


def usage_slots(
    values: Iterable[tuple[datetime, float]], kwh_factor: float, now: datetime
) -> tuple[dict[datetime, float], list[str]]:
    """kWh per slot start from a 2.0b report's (dtstart, value) pairs, and why any pair was dropped.

    Each value is the energy of the 30-minute interval starting at its dtstart (the VTN requests a
    30-minute granularity). Only slot-aligned, tz-aware starts of slots already begun are taken; a
    value for a slot reported twice in one report keeps the last.
    """
    out: dict[datetime, float] = {}
    dropped: list[str] = []
    for start, value in values:
        if not isinstance(start, datetime) or start.tzinfo is None:
            dropped.append(f"{start!r}: no offset")
        elif start.minute % 30 or start.second or start.microsecond:
            dropped.append(f"{start.isoformat()}: not a 30-minute slot start")
        elif start > now:
            dropped.append(f"{start.isoformat()}: in the future")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            dropped.append(f"{start.isoformat()}: not a number")
        else:
            out[start] = float(value) * kwh_factor
    return out, dropped


def usage_report_body(
    event_id: str, program_id: str, client_name: str, resource_name: str, slots_kwh: Mapping[datetime, float]
) -> dict[str, Any]:
    """A 3.1 USAGE report body for the slots of one event, as a 3.1 VEN would post it."""
    ordered = sorted(slots_kwh.items())
    return {
        "eventID": event_id,
        "programID": program_id,
        "clientName": client_name,
        "reportName": "OpenADR 2.0b TELEMETRY_USAGE",
        "payloadDescriptors": [
            {
                "objectType": "REPORT_PAYLOAD_DESCRIPTOR",
                "payloadType": "USAGE",
                "readingType": "DIRECT_READ",
                "units": "KWH",
            }
        ],
        "resources": [
            {
                "resourceName": resource_name,
                "intervals": [
                    {
                        "id": n,
                        "intervalPeriod": {"start": start.isoformat(), "duration": "PT30M"},
                        "payloads": [{"type": "USAGE", "values": [kwh]}],
                    }
                    for n, (start, kwh) in enumerate(ordered)
                ],
            }
        ],
    }


def event_intervals(event: Mapping[str, Any]) -> tuple[SignalInterval, ...]:
    """What a VEN's EMS must hold to for one received 2.0b event (as openleadr parses an oadrEvent).

    The inverse of the VTN's mapping, for the simulated site that obeys 2.0b instead of MQTT signals:
    ``LOAD_DISPATCH`` setpoints are import limits, or import floors when the ``vtnComment`` says the
    scheduler meant a ``DISPATCH_SETPOINT``; ``SIMPLE`` levels carry no kW, so (as an MQTT signal for a
    site without a limit) their intervals constrain nothing. A cancelled event holds to nothing.
    ValueError for an event the EMS cannot read.
    """
    descriptor = event.get("event_descriptor") or {}
    if descriptor.get("event_status") == "cancelled":
        return ()
    signals = event.get("event_signals") or []
    if not isinstance(signals, list) or len(signals) != 1:
        raise ValueError("expected one event signal")
    signal = signals[0]
    name = signal.get("signal_name")
    if name not in ("LOAD_DISPATCH", "SIMPLE"):
        raise ValueError(f"signal {name!r} is not one the EMS obeys")
    measurement = signal.get("measurement")
    if name == "LOAD_DISPATCH" and measurement and (measurement.get("unit"), measurement.get("scale")) != ("W", "k"):
        raise ValueError("setpoints must be powerReal in kW (W, scale k)")
    floor = str(descriptor.get("vtn_comment") or "").startswith("DISPATCH_SETPOINT")
    out: list[SignalInterval] = []
    for interval in signal.get("intervals") or ():
        start, duration = interval.get("dtstart"), interval.get("duration")
        if not isinstance(start, datetime) or start.tzinfo is None or not duration:
            raise ValueError("every interval needs an aware dtstart and a duration")
        kw: float | None = None
        if name == "LOAD_DISPATCH":
            value = interval.get("signal_payload")
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"setpoint {value!r} is not a power in kW")
            kw = float(value)
        out.append(SignalInterval(start, start + duration, None if floor else kw, kw if floor else None))
    if not out:
        raise ValueError("the event has no intervals")
    return tuple(out)
