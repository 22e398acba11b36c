"""DR events: the lifecycle state machine, the MQTT signal and acknowledgement payloads, settlement maths.

Pure: every instant is an argument. The signal payload is the v1 contract on ``vpp/v1/{site}/dr/signal``
(DESIGN.md section 3), modelled on OpenADR 3.1: a list of intervals, each with an ``IMPORT_CAPACITY_LIMIT``
in kW (the site's EMS keeps every slot's average import at or under it) and/or an ``IMPORT_FLOOR`` in kW
(at or above it: an "increase" event). The message is retained, so it always carries the site's *whole*
current state: every interval of every event in effect there, merged (:mod:`vpp.domain.site_signal`).
``event_id`` and ``revision`` name the change that caused the message (what the EMS acknowledges) and
``events`` lists every event the intervals come from; ``status = "cancelled"`` with no intervals means
nothing is in effect any more. A v1 EMS that predates ``IMPORT_FLOOR`` and ``events`` ignores them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import StrEnum
from typing import Any

from vpp.domain.calendar import KNOWN_YEARS
from vpp.domain.slots import JST, SLOT, SLOTS_PER_DAY, require_aware

__all__ = [
    "OWN_CONTROL_SOURCES",
    "PEAK_PROGRAMME_SOURCE",
    "SIGNAL_VERSION",
    "Direction",
    "DrAck",
    "DrSignal",
    "EventCover",
    "EventStatus",
    "IllegalTransition",
    "Settlement",
    "SignalEvent",
    "SignalInterval",
    "ack_payload",
    "attribution_shares",
    "check_transition",
    "delivered_kwh",
    "event_window_slots",
    "parse_ack",
    "parse_signal",
    "settle",
    "signal_payload",
]

SIGNAL_VERSION = 1
# Events the platform raises for a site's own demand control (the one-slot cut when a slot is about to exceed
# its target; the day's peak programme, each slot's limit): what the site does every day, part of its normal
# load, not a DR call. They never remove a day from its ERAB baseline and are never re-shared as DR requests.
PEAK_PROGRAMME_SOURCE = "peak_programme"
OWN_CONTROL_SOURCES = ("live_control", PEAK_PROGRAMME_SOURCE)
LIMIT_PAYLOAD, FLOOR_PAYLOAD = "IMPORT_CAPACITY_LIMIT", "IMPORT_FLOOR"


class Direction(StrEnum):
    """What a regional event asks of its sites (stored in ``dr_events.direction``)."""

    REDUCE = "reduce"  # X kW less: an import limit per site
    INCREASE = "increase"  # X kW more (absorb a PV surplus, negative prices): an import floor per site


class EventStatus(StrEnum):
    """Lifecycle of a regional DR event (stored in ``dr_events.status``)."""

    PLANNED = "planned"  # allocated and planned, nothing sent yet
    DISPATCHED = "dispatched"  # signals published to every called site
    ACKNOWLEDGED = "acknowledged"  # every called site accepted the latest revision
    ACTIVE = "active"  # the first event slot has started
    COMPLETED = "completed"  # the last event slot has ended
    CANCELLED = "cancelled"


# An adjustment re-plans and re-dispatches, so dispatched and acknowledged may go back to dispatched.
_ALLOWED: Mapping[EventStatus, frozenset[EventStatus]] = {
    EventStatus.PLANNED: frozenset({EventStatus.DISPATCHED, EventStatus.CANCELLED}),
    EventStatus.DISPATCHED: frozenset(
        {EventStatus.DISPATCHED, EventStatus.ACKNOWLEDGED, EventStatus.ACTIVE, EventStatus.CANCELLED}
    ),
    EventStatus.ACKNOWLEDGED: frozenset({EventStatus.DISPATCHED, EventStatus.ACTIVE, EventStatus.CANCELLED}),
    EventStatus.ACTIVE: frozenset({EventStatus.COMPLETED, EventStatus.CANCELLED}),
    EventStatus.COMPLETED: frozenset(),
    EventStatus.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):  # noqa: N818 - reads as the domain's word
    """A lifecycle change the state machine forbids (e.g. cancelling a completed event)."""


def check_transition(current: EventStatus | str, new: EventStatus | str) -> EventStatus:
    """Return ``new`` as an :class:`EventStatus` if ``current → new`` is allowed, else raise."""
    source, target = EventStatus(current), EventStatus(new)
    if target not in _ALLOWED[source]:
        allowed = ", ".join(sorted(_ALLOWED[source])) or "none (final state)"
        raise IllegalTransition(f"a {source} event cannot become {target}; allowed: {allowed}")
    return target


@dataclass(frozen=True)
class SignalInterval:
    """One interval of a signal: [start, end) with an import limit and an import floor in kW (None = none).

    The EMS keeps each slot's average import at or under the limit and at or above the floor.
    """

    start: datetime
    end: datetime
    import_limit_kw: float | None
    import_floor_kw: float | None = None


@dataclass(frozen=True)
class SignalEvent:
    """One event a site's signal carries intervals of, and the window it covers."""

    event_id: str
    revision: int
    direction: str  # a Direction
    start: datetime
    end: datetime


@dataclass(frozen=True)
class DrSignal:
    event_id: str
    revision: int
    kind: str  # "peak_cut" or "peak_shift"
    status: str  # "active" or "cancelled"
    issued_at: datetime
    intervals: tuple[SignalInterval, ...]
    events: tuple[SignalEvent, ...] = ()


@dataclass(frozen=True)
class DrAck:
    event_id: str
    revision: int
    accepted: bool
    ts: datetime
    detail: str = ""


def _check_interval(interval: SignalInterval, previous_end: datetime | None) -> None:
    require_aware(interval.start, "interval start")
    require_aware(interval.end, "interval end")
    if interval.end <= interval.start or (previous_end is not None and interval.start < previous_end):
        raise ValueError("signal intervals must be non-empty, ordered and disjoint")
    for name, value in (("import_limit_kw", interval.import_limit_kw), ("import_floor_kw", interval.import_floor_kw)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
    limit, floor = interval.import_limit_kw, interval.import_floor_kw
    if limit is not None and floor is not None and floor > limit:
        raise ValueError(f"import floor {floor} kW is above the import limit {limit} kW")


# Values go out to the watt: an EMS shows and logs them, and 2.999999999999999 kW (float noise from the
# planner's arithmetic) is neither more exact nor readable. Rounding both the same way keeps floor ≤ limit.
SIGNAL_KW_DECIMALS = 3


def _payloads(interval: SignalInterval) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if interval.import_limit_kw is not None:
        out.append({"type": LIMIT_PAYLOAD, "value_kw": round(interval.import_limit_kw, SIGNAL_KW_DECIMALS)})
    if interval.import_floor_kw is not None:
        out.append({"type": FLOOR_PAYLOAD, "value_kw": round(interval.import_floor_kw, SIGNAL_KW_DECIMALS)})
    return out


def signal_payload(signal: DrSignal) -> bytes:
    """Encode a signal as the v1 JSON body (UTF-8). Intervals are checked: ordered, aware, values ≥ 0,
    floor ≤ limit."""
    if signal.status not in {"active", "cancelled"}:
        raise ValueError(f"status must be active or cancelled, got {signal.status!r}")
    previous_end: datetime | None = None
    for interval in signal.intervals:
        _check_interval(interval, previous_end)
        previous_end = interval.end
    body: dict[str, Any] = {
        "version": SIGNAL_VERSION,
        "event_id": signal.event_id,
        "revision": signal.revision,
        "kind": signal.kind,
        "status": signal.status,
        "issued_at": require_aware(signal.issued_at, "issued_at").isoformat(),
        "intervals": [
            {"start": i.start.isoformat(), "end": i.end.isoformat(), "payloads": _payloads(i)} for i in signal.intervals
        ],
    }
    if signal.events:
        body["events"] = [
            {"event_id": e.event_id, "revision": e.revision, "direction": str(e.direction),
             "start": require_aware(e.start, "event start").isoformat(),
             "end": require_aware(e.end, "event end").isoformat()}
            for e in signal.events
        ]  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def parse_signal(payload: bytes) -> DrSignal:
    """Decode a v1 signal (as the site EMS does); ``ValueError`` on anything malformed."""
    try:
        body = json.loads(payload)
        if body.get("version") != SIGNAL_VERSION:
            raise ValueError(f"unsupported signal version {body.get('version')!r}")
        intervals = []
        for item in body["intervals"]:
            values = {p.get("type"): float(p["value_kw"]) for p in item.get("payloads", [])}
            intervals.append(
                SignalInterval(
                    _aware(item["start"]), _aware(item["end"]), values.get(LIMIT_PAYLOAD), values.get(FLOOR_PAYLOAD)
                )
            )
        events = tuple(
            SignalEvent(str(e["event_id"]), int(e["revision"]), str(Direction(e["direction"])),
                        _aware(e["start"]), _aware(e["end"]))
            for e in body.get("events", ())
        )  # fmt: skip
        return DrSignal(
            event_id=str(body["event_id"]),
            revision=int(body["revision"]),
            kind=str(body["kind"]),
            status=str(body["status"]),
            issued_at=_aware(body["issued_at"]),
            intervals=tuple(intervals),
            events=events,
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"malformed DR signal: {error!r}") from error


def ack_payload(ack: DrAck) -> bytes:
    return json.dumps(
        {
            "event_id": ack.event_id,
            "revision": ack.revision,
            "status": "accepted" if ack.accepted else "rejected",
            "ts": require_aware(ack.ts, "ts").isoformat(),
            "detail": ack.detail,
        }
    ).encode()


# Revisions are PostgreSQL integers; event ids are short (the API's pattern allows 64 characters).
_MAX_REVISION = 2**31 - 1
_MAX_EVENT_ID = 200


def parse_ack(payload: bytes) -> DrAck:
    """Decode a site's acknowledgement; ``ValueError`` on anything malformed.

    Whatever a site sends must end here as a DrAck the database can store or as ValueError: an ack is
    read by the one DR scheduler of the region, so an exception of another kind (a NUL or a lone
    surrogate the database cannot store, a revision of Infinity) would stop DR for every site.
    """
    try:
        body = json.loads(payload)
        status = body["status"]
        if status not in {"accepted", "rejected"}:
            raise ValueError(f"ack status must be accepted or rejected, got {status!r}")
        event_id = body["event_id"]
        if isinstance(event_id, bool) or not isinstance(event_id, str | int):
            raise ValueError(f"ack event_id must be a string, got {type(event_id).__name__}")
        event_id = str(event_id)
        if not 0 < len(event_id) <= _MAX_EVENT_ID or not _storable(event_id):
            raise ValueError(f"ack event_id {event_id[:80]!r} is empty, too long, or holds a NUL or lone surrogate")
        raw_revision = body["revision"]
        if isinstance(raw_revision, bool):
            raise ValueError("ack revision must be an integer, got a boolean")
        revision = int(raw_revision)
        if not 0 <= revision <= _MAX_REVISION:
            raise ValueError(f"ack revision {revision} is outside 0..{_MAX_REVISION}")
        return DrAck(
            event_id,
            revision,
            status == "accepted",
            _aware(body["ts"]),
            _printable_text(str(body.get("detail", ""))[:500]),
        )
    except (KeyError, TypeError, AttributeError, OverflowError, json.JSONDecodeError) as error:
        # OverflowError: int(Infinity); ValueError (int(NaN), a bad ts) passes through as it is.
        raise ValueError(f"malformed DR ack: {error!r}") from error


def _storable(text: str) -> bool:
    """Whether PostgreSQL can store `text`: no NUL, and valid UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _printable_text(text: str) -> str:
    """A site's free text, made storable: NULs and lone surrogates become U+FFFD."""
    if _storable(text):
        return text
    return "".join("\ufffd" if ch == "\x00" or 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in text)


def _aware(text: str) -> datetime:
    return require_aware(datetime.fromisoformat(text), "timestamp")


@dataclass(frozen=True)
class Settlement:
    """A site's (or an event's) settled reduction.

    Attributes
    ----------
    delivered_kwh : float
        Net reduction over the metered event slots, kWh (slots that used more than the baseline count
        against the slots that used less; an event is one commitment).
    settled_kwh : float
        ``max(delivered_kwh, 0)``: a negative delivery is not charged back as a penalty here.
    amount_jpy : float
        ``settled_kwh × incentive``.
    missing_slots : int
        Event slots without metered data; they count as zero reduction.
    """

    delivered_kwh: float
    settled_kwh: float
    amount_jpy: float
    missing_slots: int


def settle(reductions_kwh: Sequence[float], incentive_jpy_per_kwh: float) -> Settlement:
    """Settle one site's per-slot reductions (NaN = not metered) at ``incentive_jpy_per_kwh``."""
    if not (math.isfinite(incentive_jpy_per_kwh) and incentive_jpy_per_kwh >= 0):
        raise ValueError(f"incentive must be a finite number ≥ 0 JPY/kWh, got {incentive_jpy_per_kwh}")
    known = [value for value in reductions_kwh if math.isfinite(value)]
    delivered = math.fsum(known)
    settled = max(delivered, 0.0)
    return Settlement(delivered, settled, settled * incentive_jpy_per_kwh, len(reductions_kwh) - len(known))


def delivered_kwh(reductions_kwh: Sequence[float], direction: str) -> tuple[float, ...]:
    """Per-slot delivery in the direction the event asked, kWh: the reduction (baseline − actual) for a
    "reduce" event, the increase (actual − baseline) for an "increase" event. NaN stays NaN."""
    sign = -1.0 if Direction(direction) == Direction.INCREASE else 1.0
    return tuple(sign * value for value in reductions_kwh)


@dataclass(frozen=True)
class EventCover:
    """Another event sent to the same site: its window, its share there (kW), whether it is the site's own
    demand control (:data:`OWN_CONTROL_SOURCES`), and its direction."""

    start_at: datetime
    end_at: datetime
    allocated_kw: float
    own_control: bool
    direction: str


def attribution_shares(
    slot_starts: Sequence[datetime], allocated_kw: float, own_control: bool, direction: str,
    others: Sequence[EventCover],
) -> tuple[float, ...]:  # fmt: skip
    """The fraction of a site's measured delivery in each slot that belongs to this event.

    A site has one meter: where several events were in force there in the same slot, its one reduction (or
    increase) must be verified, settled and counted as saved electricity once, not once per event. DR events
    in the same direction share it in proportion to what each asked of the site (its allocated kW); the site's
    own demand control (live control, the peak programme) gets nothing in a slot a DR event covers (the DR
    call is what is paid for), and its own overlapping events share the rest the same way.
    """
    shares = []
    for slot in slot_starts:
        covering = [o for o in others if o.start_at <= slot < o.end_at]
        if own_control and any(not o.own_control for o in covering):
            shares.append(0.0)
            continue
        peers = [o for o in covering if o.own_control == own_control and o.direction == direction]
        if not peers:
            shares.append(1.0)
            continue
        weights = [max(allocated_kw, 0.0)] + [max(o.allocated_kw, 0.0) for o in peers]
        total = math.fsum(weights)
        shares.append(weights[0] / total if total > 0 else 1.0 / len(weights))
    return tuple(shares)


def event_window_slots(start_at: datetime, end_at: datetime) -> tuple[date, int, int]:
    """(JST day, first slot, end slot) of an event window; ``ValueError`` unless it is slot-aligned and
    within one JST day (a baseline is per day, so a longer event is split into one event per day)."""
    require_aware(start_at, "start_at")
    require_aware(end_at, "end_at")
    first_year, last_year = KNOWN_YEARS
    try:
        day = start_at.astimezone(JST).date()
    except OverflowError:  # 0001-01-01T00:00+09:00 and the like: no JST date to plan on
        day = None
    if day is None or not first_year <= day.year <= last_year:
        # Planning needs the Japanese calendar (baselines per weekday or holiday), known for these years only.
        raise ValueError(f"start_at must lie in the years {first_year}-{last_year} (Japan time); got {start_at}")
    midnight = datetime.combine(day, time(0), JST)
    if (start_at - midnight) % SLOT or (end_at - midnight) % SLOT:
        raise ValueError("event start and end must be on 30-minute slot boundaries")
    first, end = (start_at - midnight) // SLOT, (end_at - midnight) // SLOT
    if not 0 <= first < end <= SLOTS_PER_DAY:
        raise ValueError("an event must end after it starts and lie within one JST day")
    return day, int(first), int(end)
