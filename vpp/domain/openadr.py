"""OpenADR 3.1.0 vocabulary and mappings, free of I/O.

- Scopes and the default grants of the two client roles: business logic (``bl``) and VENs.
- Targets: how a VEN's granted targets decide which programs and events it may read
  (Definition.md, "Object Privacy"), and target hiding.
- The scheduler's DR events as OpenADR event bodies: peak-cut as ``IMPORT_CAPACITY_LIMIT`` (kW)
  per 30-minute interval ("increase" events as ``DISPATCH_SETPOINT``, the import floor in kW), peak-shift
  as ``SIMPLE`` levels, each asking for ``USAGE`` reports.
- VEN ``USAGE`` reports back to kWh per 30-minute slot, the figure verification compares.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from vpp.domain.dr_events import SIGNAL_KW_DECIMALS

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_SCOPES",
    "DR_PROGRAM_NAME",
    "OpenAdrRole",
    "Scope",
    "SiteCall",
    "dr_event_body",
    "event_end",
    "fill_from_reports",
    "hide_targets",
    "is_duration",
    "parse_duration",
    "site_target",
    "usage_by_slot",
    "visible_to_ven",
]

Scope = Literal[
    "read_all",
    "read_targets",
    "read_ven_objects",
    "write_programs",
    "write_events",
    "write_reports",
    "write_subscriptions",
    "write_vens",
]
OpenAdrRole = Literal["bl", "ven"]
ALL_SCOPES: tuple[Scope, ...] = (
    "read_all",
    "read_targets",
    "read_ven_objects",
    "write_programs",
    "write_events",
    "write_reports",
    "write_subscriptions",
    "write_vens",
)
# Definition.md, "OAuth2 Security Scopes": BL reads everything and writes programs and events;
# VENs read what is targeted at them or theirs, and write reports. Both write subscriptions and vens.
DEFAULT_SCOPES: dict[OpenAdrRole, tuple[Scope, ...]] = {
    "bl": ("read_all", "write_programs", "write_events", "write_subscriptions", "write_vens"),
    "ven": ("read_targets", "read_ven_objects", "write_reports", "write_subscriptions", "write_vens"),
}

DR_PROGRAM_NAME = "kawasaki-vpp-dr"
SLOT = timedelta(minutes=30)
_SLOT_DURATION = "PT30M"

_DURATION = re.compile(
    r"^(-?)P(?=\d|T\d)(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)([DW]))?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def site_target(site_id: str) -> str:
    """The target string that addresses one site (granted to that site's VEN by business logic)."""
    return f"site:{site_id}"


def visible_to_ven(object_targets: Collection[str], granted: Collection[str]) -> bool:
    """Whether a VEN holding `granted` targets may read a program or event with `object_targets`.

    An object without targets is addressed to every VEN (a tariff, say); one with targets only to
    VENs granted at least one of them.
    """
    return not object_targets or not set(object_targets).isdisjoint(granted)


def hide_targets(object_targets: Sequence[str], granted: Collection[str]) -> list[str]:
    """Target hiding: a VEN learns only those of an object's targets it has been granted."""
    return [target for target in object_targets if target in granted]


def is_duration(text: str) -> bool:
    """Whether `text` matches the spec's ISO 8601 duration pattern (``P9999Y`` included)."""
    return _DURATION.match(text) is not None


def parse_duration(text: str) -> timedelta:
    """An ISO 8601 duration as the spec's pattern allows it; years and months are refused (no fixed length)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    sign, years, months, days, unit, hours, minutes, seconds = match.groups()
    if years or months:
        raise ValueError(f"durations in years or months have no fixed length: {text!r}")
    try:
        total = timedelta(
            days=int(days or 0) * (7 if unit == "W" else 1),
            hours=int(hours or 0),
            minutes=int(minutes or 0),
            seconds=float(seconds or 0),
        )
    except OverflowError:  # e.g. P9999999999D: more days than a timedelta holds
        raise ValueError(f"duration out of range: {text!r}") from None
    return -total if sign else total


@dataclass(frozen=True, slots=True)
class SiteCall:
    """One site's share of a scheduler DR event, as the OpenADR event for that site's VEN carries it."""

    event_id: str
    kind: str  # "peak_cut" or "peak_shift"
    site_id: str
    start_at: datetime
    end_at: datetime
    import_limit_kw: float | None
    allocated_kw: float
    revision: int
    import_floor_kw: tuple[float, ...] | None = None  # per slot, "increase" events


def _slots(start_at: datetime, end_at: datetime) -> list[datetime]:
    if start_at.tzinfo is None or end_at.tzinfo is None:
        raise ValueError("DR event times must be timezone-aware")
    if end_at <= start_at:
        raise ValueError("a DR event must end after it starts")
    out: list[datetime] = []
    at = start_at
    while at < end_at:
        out.append(at)
        at += SLOT
    return out


def dr_event_body(call: SiteCall, program_id: str) -> dict[str, Any]:
    """The OpenADR eventRequest body for one site's part of a scheduler DR event.

    Peak-cut: one 30-minute interval per slot holding ``IMPORT_CAPACITY_LIMIT`` in kW (DOMAIN.md,
    "Signalling standards"); a called site without a limit gets ``SIMPLE`` level 2 instead. An "increase"
    event (import floors) holds ``DISPATCH_SETPOINT`` in kW per slot: the consumption the site is dispatched
    to, at least. Peak-shift: ``SIMPLE`` level 2 in each window slot (move consumption out of it). Every
    event asks for ``USAGE`` (kWh) per interval.
    """
    slots = _slots(call.start_at, call.end_at)
    values: list[float | int]
    if call.kind not in ("peak_cut", "peak_shift"):
        raise ValueError(f"unknown DR event kind {call.kind!r}")
    if call.import_floor_kw is not None:
        if len(call.import_floor_kw) != len(slots):
            raise ValueError(f"{len(call.import_floor_kw)} import floors for {len(slots)} slots")
        payload_type, units = "DISPATCH_SETPOINT", "KW"
        values = [round(float(v), SIGNAL_KW_DECIMALS) for v in call.import_floor_kw]
    elif call.kind == "peak_cut" and call.import_limit_kw is not None:
        payload_type, units = "IMPORT_CAPACITY_LIMIT", "KW"
        values = [round(float(call.import_limit_kw), SIGNAL_KW_DECIMALS)] * len(slots)
    else:
        payload_type, units, values = "SIMPLE", None, [2] * len(slots)
    descriptor: dict[str, Any] = {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": payload_type}
    if units is not None:
        descriptor["units"] = units
    return {
        "programID": program_id,
        "eventName": f"{call.event_id} {call.kind.replace('_', '-')} {call.site_id} r{call.revision}",
        "priority": 0,
        "targets": [site_target(call.site_id)],
        "payloadDescriptors": [descriptor],
        "reportDescriptors": [
            {
                "payloadType": "USAGE",
                "readingType": "DIRECT_READ",
                "units": "KWH",
                "targets": [site_target(call.site_id)],
                "aggregate": False,
                "startInterval": -1,
                "numIntervals": -1,
                "historical": True,
                "frequency": -1,
                "repeat": 1,
            }
        ],
        "intervalPeriod": {"start": slots[0].isoformat(), "duration": _SLOT_DURATION},
        "intervals": [
            {"id": n, "payloads": [{"type": payload_type, "values": [value]}]} for n, value in enumerate(values)
        ],
    }


def _interval_start(
    interval: Mapping[str, Any], default_start: datetime | None, default_duration: timedelta | None, index: int
) -> tuple[datetime, timedelta]:
    period = interval.get("intervalPeriod") or {}
    duration = parse_duration(period["duration"]) if period.get("duration") else default_duration
    if duration is None:
        raise ValueError(f"interval {interval.get('id')} has no duration")
    if period.get("start"):
        return datetime.fromisoformat(period["start"]), duration
    if default_start is None:
        raise ValueError(f"interval {interval.get('id')} has no start")
    try:
        return default_start + index * duration, duration
    except OverflowError:
        raise ValueError(f"interval {interval.get('id')} starts beyond the years a date can hold") from None


def usage_by_slot(resources: Iterable[Mapping[str, Any]], kwh_per_unit: float = 1.0) -> dict[datetime, float]:
    """kWh per 30-minute slot start from a report's ``resources`` (USAGE payloads), summed over resources.

    Intervals take their start and duration from their own ``intervalPeriod`` or the resource's,
    consecutive intervals following each other. Only 30-minute intervals aligned to a slot are taken
    (verification is per slot); ``kwh_per_unit`` converts the units the report declares (1 for KWH,
    0.001 for WH).
    """
    out: dict[datetime, float] = {}
    for resource in resources:
        period = resource.get("intervalPeriod") or {}
        default_start = datetime.fromisoformat(period["start"]) if period.get("start") else None
        default_duration = parse_duration(period["duration"]) if period.get("duration") else None
        for index, interval in enumerate(resource.get("intervals") or ()):
            start, duration = _interval_start(interval, default_start, default_duration, index)
            if start.tzinfo is None:
                raise ValueError("report interval starts must carry an offset")
            if duration != SLOT or start.minute % 30 or start.second or start.microsecond:
                raise ValueError(f"interval {interval.get('id')} is not one aligned 30-minute slot")
            for payload in interval.get("payloads") or ():
                if payload.get("type") != "USAGE":
                    continue
                numbers = [
                    v for v in payload.get("values") or () if isinstance(v, int | float) and not isinstance(v, bool)
                ]
                if numbers:
                    out[start] = out.get(start, 0.0) + float(numbers[0]) * kwh_per_unit
    return out


def event_end(body: Mapping[str, Any]) -> datetime | None:
    """When an event's last interval ends; None if open-ended, looping (``duration`` set) or untimed.

    Intervals without their own start follow the event's ``intervalPeriod`` start, one default
    duration each (User_Guide.md, "Interval period"). ``P9999Y`` (infinity) makes the event open-ended.
    """
    if body.get("duration"):
        return None
    period = body.get("intervalPeriod") or {}
    default_start = datetime.fromisoformat(period["start"]) if period.get("start") else None
    try:
        default_duration = parse_duration(period["duration"]) if period.get("duration") else None
        end: datetime | None = None
        for index, interval in enumerate(body.get("intervals") or ()):
            start, duration = _interval_start(interval, default_start, default_duration, index)
            end = max(end, start + duration) if end is not None else start + duration
    except (ValueError, OverflowError):  # OverflowError: an interval ending past year 9999
        return None
    return end if end is not None and end.tzinfo is not None else None


def fill_from_reports(
    metered: Sequence[float | None] | None, reported: Sequence[float | None]
) -> list[float | None] | None:
    """A day's actual kWh per slot: the platform's meter where it has data, the VEN's USAGE report elsewhere.

    The meter (ECHONET Lite B-route through the site gateway) is the platform's own measurement and
    wins; a VEN's report fills the slots the meter missed, and is all there is for a site whose
    VEN reports over OpenADR without sending telemetry. None when neither has anything.
    """
    if metered is None and all(v is None for v in reported):
        return None
    base = list(metered) if metered is not None else [None] * len(reported)
    if len(base) != len(reported):
        raise ValueError(f"metered has {len(base)} slots, reported {len(reported)}")
    return [m if m is not None else r for m, r in zip(base, reported, strict=True)]
