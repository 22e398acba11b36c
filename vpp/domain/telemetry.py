"""Telemetry payload decoding and validation (MQTT contract v1, DESIGN.md section 3).

A message is accepted whole or rejected whole: a device that sends a batch with one bad reading
gets the whole message back in the dead-letter table with the index of the offending reading,
so an operator can see exactly what the gateway sent. Partial acceptance would make a resend
after a fix ambiguous.

Accepted bodies:
- one reading: ``{"ts": "2026-11-23T14:00:05+09:00", "power_kw": 12.5, "import_kwh": 1043.2}``
- a batch: ``{"readings": [ ... ]}``
- SenML (RFC 8428) JSON: ``[{"bn": "meter-1/", "bt": 1.7e9, "n": "power", "u": "W", "v": 12500}, ...]``

Two paths, one set of rules. `decode_body` + `validate_reading` are the reference: they check one
reading at a time and explain every rejection. `validate_columns` is the fast path for the common
shape (JSON readings that all carry the same fields and pass every check): it checks whole columns
with C-level passes (min, max, sum, map) instead of Python code per reading, and gives up (None) on
anything unusual or wrong, so the reference alone decides and explains rejections. Ingest spent most
of its CPU in the per-reading path; the columnar one costs about a tenth of it.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from operator import itemgetter
from typing import Any

from pydantic_core import from_json

from vpp.domain.devices import KIND_FIELDS, DeviceKind
from vpp.domain.units import ENERGY_UNITS, POWER_UNITS

__all__ = [
    "JsonBody",
    "Limits",
    "RawReading",
    "Reading",
    "ReadingColumns",
    "RejectReason",
    "Rejection",
    "TopicParts",
    "decode_body",
    "decode_payload",
    "load_json",
    "parse_topic",
    "validate_columns",
    "validate_reading",
]


class RejectReason(StrEnum):
    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed_json"
    INVALID_PAYLOAD = "invalid_payload"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_SITE = "unknown_site"
    UNKNOWN_DEVICE = "unknown_device"
    NON_FINITE = "non_finite"
    IMPOSSIBLE_VALUE = "impossible_value"
    FUTURE_TIMESTAMP = "future_timestamp"
    TOO_OLD = "too_old"
    CONFLICTING_READINGS = "conflicting_readings"
    PROCESSING_ERROR = "processing_error"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class TopicParts:
    site_id: str
    device_id: str


@dataclass(frozen=True, slots=True)
class RawReading:
    """One reading as decoded from the wire, before the device's kind is known.

    `values` maps a field stem (power, import, export, energy, charge, discharge, soc, vehicles)
    to a value already converted to kW / kWh / % / count.
    """

    ts: datetime
    values: Mapping[str, float]
    site_id: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """A validated reading in stored units and sign conventions (see vpp.domain.devices)."""

    ts: datetime
    power_kw: float | None
    energy_pos_kwh: float | None
    energy_neg_kwh: float | None
    soc_pct: float | None
    vehicles: int | None


@dataclass(frozen=True, slots=True)
class Limits:
    """Plausibility limits. A value beyond them is physically impossible, not merely unusual."""

    future_tolerance: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=400)
    max_abs_power_kw: float = 100_000.0  # 100 MW: no single site device in this region comes close
    rated_power_factor: float = 1.5  # inverters briefly exceed their rating; 1.5x never happens
    max_counter_kwh: float = 1e12
    max_vehicles: int = 10_000
    max_batch_readings: int = 5_000


_TOPIC_PREFIX = "vpp/v1/"
_MAX_ID_LEN = 64


def parse_topic(topic: str) -> TopicParts | Rejection:
    """Split ``vpp/v1/{site_id}/{device_id}/telemetry`` into its identifiers."""
    parts = topic.split("/")
    if len(parts) != 5 or not topic.startswith(_TOPIC_PREFIX) or parts[4] != "telemetry":
        return Rejection(RejectReason.BAD_TOPIC, f"expected vpp/v1/{{site}}/{{device}}/telemetry, got {topic!r}")
    site_id, device_id = parts[2], parts[3]
    for name, value in (("site_id", site_id), ("device_id", device_id)):
        if not value or len(value) > _MAX_ID_LEN or value in {"+", "#"}:
            return Rejection(RejectReason.BAD_TOPIC, f"{name} {value!r} in topic is empty or too long")
    return TopicParts(site_id, device_id)


class _InvalidError(Exception):
    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _number(value: Any, where: str) -> float:
    # bool is an int subclass in Python; a gateway sending `true` as power is a bug, not 1 kW.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}: expected a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond the float range: infinite as a float
        raise _InvalidError(RejectReason.NON_FINITE, f"{where}: integer beyond the float range") from None
    if not math.isfinite(number):
        raise _InvalidError(RejectReason.NON_FINITE, f"{where}: {value!r} is not a finite number")
    return number


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.ts: expected an RFC 3339 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:  # RFC 3339 (5.6) allows "t" and "z" in lower case; Python's parser does not
            moment = datetime.fromisoformat(value.upper())
        except ValueError:
            raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.ts: {value!r} is not RFC 3339") from None
    if moment.tzinfo is None:
        raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.ts: {value!r} has no UTC offset")
    return moment


_POWER_SUFFIXES = {"_kw": "kW", "_w": "W"}
_ENERGY_SUFFIXES = {"_kwh": "kWh", "_wh": "Wh"}
_ENERGY_STEMS = frozenset({"import", "export", "energy", "charge", "discharge"})


def _json_reading(item: Any, where: str) -> RawReading:
    if not isinstance(item, dict):
        raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}: expected an object")
    if "ts" not in item:
        raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.ts: missing")
    ts = _timestamp(item["ts"], where)
    values: dict[str, float] = {}
    for key, raw in item.items():
        field = _FIELDS.get(key)
        if field is None:
            continue  # identity and unknown fields: gateways may add diagnostics without breaking
        stem, scale = field
        if stem in values:
            raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.{key}: {stem} given twice")
        # Inline fast path for the common case (a float); _number handles and explains the rest.
        if type(raw) is float and math.isfinite(raw):
            values[stem] = raw * scale
        else:
            values[stem] = _number(raw, f"{where}.{key}") * scale
    site_id = item.get("site_id")
    device_id = item.get("device_id")
    return RawReading(
        ts,
        values,
        site_id if isinstance(site_id, str) else None,
        device_id if isinstance(device_id, str) else None,
    )


def _field_table() -> dict[str, tuple[str, float]]:
    """Every accepted JSON field name -> (stem, scale to the stored unit), built once."""
    table: dict[str, tuple[str, float]] = {"soc_pct": ("soc", 1.0), "vehicles": ("vehicles", 1.0)}
    for suffix, unit in _ENERGY_SUFFIXES.items():
        for stem in _ENERGY_STEMS:
            table[stem + suffix] = (stem, ENERGY_UNITS[unit])
    for suffix, unit in _POWER_SUFFIXES.items():
        table["power" + suffix] = ("power", POWER_UNITS[unit])
    return table


_FIELDS = _field_table()


# SenML: RFC 8428 section 4.5.3 — times below 2**28 are relative to the time of reception.
_SENML_RELATIVE_LIMIT = 2**28
# Absolute SenML times (seconds since 1970) that a datetime can hold; beyond them a time is garbage.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SENML_MIN_TIME = float(_SENML_RELATIVE_LIMIT)
_SENML_MAX_TIME = (datetime(9999, 1, 1, tzinfo=UTC) - _EPOCH).total_seconds()
_SENML_NAMES = frozenset({"power", "soc", "vehicles"} | _ENERGY_STEMS)
_SENML_SOC_UNITS = {"%EL": 1.0, "%": 1.0, "/": 100.0}


def _senml(records: list[Any], received_at: datetime) -> list[RawReading]:
    base_name = ""
    base_time = 0.0
    base_unit: str | None = None
    by_time: dict[float, dict[str, float]] = {}
    devices: dict[str, int] = {}  # what the names say before the quantity -> first record naming it
    for index, record in enumerate(records):
        where = f"senml[{index}]"
        if not isinstance(record, dict):
            raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}: expected an object")
        if "bn" in record:
            if not isinstance(record["bn"], str):
                raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.bn: expected a string")
            base_name = record["bn"]
        if "bt" in record:
            base_time = _number(record["bt"], f"{where}.bt")
        if "bu" in record:
            base_unit = record["bu"] if isinstance(record["bu"], str) else None
        n = record.get("n")
        if n is not None and not isinstance(n, str):
            raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.n: expected a string")
        name = base_name + (n or "")
        # Gateways prefix names with device URNs or paths; the quantity is the last segment.
        prefix, _sep, stem = name.replace(":", "/").rstrip("/").rpartition("/")
        if "v" not in record:
            if "n" in record:
                raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}: record {name!r} has no numeric v")
            continue  # a base-only record
        if stem not in _SENML_NAMES:
            continue
        devices.setdefault(prefix, index)
        value = _number(record["v"], f"{where}.v")
        unit = record.get("u", base_unit)
        value = _senml_scaled(stem, value, unit, where)
        t = base_time + _number(record.get("t", 0.0), f"{where}.t")
        if abs(t) < _SENML_RELATIVE_LIMIT:
            # RFC 8428 resolves such a time against the moment of reception, which differs on every
            # redelivery: a resent message would be stored a second time under other timestamps.
            raise _InvalidError(
                RejectReason.INVALID_PAYLOAD,
                f"{where}: relative SenML time {t!r} is not accepted (send absolute times, bt/t >= 2**28)",
            )
        if not _SENML_MIN_TIME <= t <= _SENML_MAX_TIME:
            raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}: time {t!r} is outside years 1979..9999")
        slot = by_time.setdefault(t, {})
        if stem in slot:
            raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}: {stem} given twice for one time")
        slot[stem] = value
    if len(devices) > 1:
        # The topic names the device: a pack whose names move from one device to another would store
        # every device's values as the topic's (a PV's power as the meter's import), so it is refused
        # as a JSON reading naming another device is.
        named = ", ".join(f"{prefix or '(no prefix)'!r} from senml[{first}]" for prefix, first in devices.items())
        raise _InvalidError(
            RejectReason.TOPIC_MISMATCH,
            f"senml: the pack names several devices ({named}); publish each device's records on its own topic",
        )
    if not by_time:
        raise _InvalidError(RejectReason.INVALID_PAYLOAD, "senml: no known quantity in the pack")
    return [RawReading(_EPOCH + timedelta(seconds=t), values) for t, values in sorted(by_time.items())]


def _senml_scaled(stem: str, value: float, unit: Any, where: str) -> float:
    if stem == "power":
        table, expected = POWER_UNITS, "W or kW"
    elif stem in _ENERGY_STEMS:
        table, expected = ENERGY_UNITS, "Wh or kWh"
    elif stem == "soc":
        table, expected = _SENML_SOC_UNITS, "%EL"
    else:
        return value  # vehicles: a count, SenML unit "count" or none
    if not isinstance(unit, str) or unit not in table:  # a list or object is no unit (and unhashable)
        raise _InvalidError(RejectReason.INVALID_PAYLOAD, f"{where}.u: {unit!r} is not a unit for {stem} ({expected})")
    return value * table[unit]


@dataclass(frozen=True, slots=True)
class JsonBody:
    """A parsed message body (kept in a box so that it cannot be mistaken for a Rejection)."""

    value: Any


def load_json(payload: bytes, *, max_bytes: int) -> JsonBody | Rejection:
    """Parse a message body, or reject it as oversized or malformed."""
    if len(payload) > max_bytes:
        return Rejection(RejectReason.OVERSIZED, f"payload is {len(payload)} bytes, limit {max_bytes}")
    # pydantic-core's parser (Rust) is 2-3x faster than json.loads. It accepts a subset of what
    # json.loads accepts and builds equal values when both do; the rest (a UTF-8 BOM, UTF-16, lone
    # surrogates, errors) falls through to json.loads, which decides and explains.
    with contextlib.suppress(ValueError):
        return JsonBody(from_json(payload, allow_inf_nan=True))
    try:
        return JsonBody(json.loads(payload))
    except (UnicodeDecodeError, ValueError) as error:
        return Rejection(RejectReason.MALFORMED_JSON, f"not JSON: {error}"[:300])
    except RecursionError:
        # A few kilobytes of "[[[[…" exhaust the parser's stack; it is garbage, not a crash.
        return Rejection(RejectReason.MALFORMED_JSON, "JSON nested too deeply")


def decode_body(body: JsonBody, *, received_at: datetime, limits: Limits | None = None) -> list[RawReading] | Rejection:
    """Turn a parsed body into raw readings one by one, or say precisely why it cannot be (the reference path)."""
    limits = limits or Limits()
    value = body.value
    try:
        if isinstance(value, list):
            readings = _senml(value, received_at)
        elif isinstance(value, dict) and "readings" in value:
            items = value["readings"]
            if not isinstance(items, list) or not items:
                raise _InvalidError(RejectReason.INVALID_PAYLOAD, "readings: expected a non-empty list")
            readings = [_json_reading(item, f"readings[{i}]") for i, item in enumerate(items)]
        elif isinstance(value, dict):
            readings = [_json_reading(value, "reading")]
        else:
            raise _InvalidError(
                RejectReason.INVALID_PAYLOAD,
                f"expected an object or a SenML array, got {type(value).__name__}",
            )
    except _InvalidError as invalid:
        return Rejection(invalid.reason, invalid.detail)
    except RecursionError:
        return Rejection(RejectReason.INVALID_PAYLOAD, "payload nested too deeply")
    if len(readings) > limits.max_batch_readings:
        return Rejection(RejectReason.OVERSIZED, f"{len(readings)} readings, limit {limits.max_batch_readings}")
    conflict = _conflict(readings)
    if conflict:
        return Rejection(RejectReason.CONFLICTING_READINGS, conflict)
    return readings


def _conflict(readings: list[RawReading]) -> str | None:
    """Two readings of one message for the same instant with different values: which one is true is
    unknowable, and storage keeps only one reading per instant, so the message is refused whole.
    Exact repeats are harmless (one row is kept)."""
    if len(readings) < 2:
        return None
    seen: dict[datetime, int] = {}
    for index, reading in enumerate(readings):
        first = seen.setdefault(reading.ts, index)
        if first != index and readings[first].values != reading.values:
            return (
                f"readings[{first}] and readings[{index}] are both for {reading.ts.isoformat()} with different values"
            )
    return None


def decode_payload(
    payload: bytes, *, received_at: datetime, max_bytes: int, limits: Limits | None = None
) -> list[RawReading] | Rejection:
    """Decode an MQTT telemetry body into raw readings, or say precisely why it cannot be."""
    body = load_json(payload, max_bytes=max_bytes)
    if isinstance(body, Rejection):
        return body
    return decode_body(body, received_at=received_at, limits=limits)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs microseconds, once per message here
class ReadingColumns:
    """A message's validated readings column-wise, in stored units; a column is None when no reading has it."""

    ts: list[datetime]
    power_kw: list[float] | None
    energy_pos_kwh: list[float] | None
    energy_neg_kwh: list[float] | None
    soc_pct: list[float] | None
    vehicles: list[int] | None
    newest: datetime
    # The timestamps exactly as the gateway sent them: the end-to-end confirmation echoes them, which
    # costs nothing here where formatting 50,000 datetimes per second would cost the writer dearly.
    ts_text: tuple[str, ...] = ()


class _NotCommonError(Exception):
    """The fast path met something it leaves to the reference path."""


def validate_columns(
    body: JsonBody,
    topic: TopicParts,
    kind: DeviceKind,
    *,
    now: datetime,
    limits: Limits,
    rated_power_kw: float | None = None,
) -> ReadingColumns | None:
    """Validate a JSON body column-wise when every reading has the same fields and every check passes.

    None means "not the common case or not valid": the caller must then run `decode_body` and
    `validate_reading`, which decide and explain. This function accepts only what they accept and
    yields the same values (tests/unit/domain/test_telemetry.py compares both paths).
    """
    value = body.value
    if type(value) is not dict:
        return None  # SenML and anything odd
    items = value.get("readings")
    # Its fixed cost per message (about twice the reference path's for one reading) pays off from
    # three readings on: single readings take the reference path, which is the cheaper one for them.
    if type(items) is not list or not _COLUMNS_MIN_READINGS <= len(items) <= limits.max_batch_readings:
        return None
    try:
        return _columns(items, topic, kind, now, limits, rated_power_kw)
    except (_NotCommonError, KeyError, TypeError, ValueError, OverflowError):
        # KeyError: a reading lacks a field the first one has; TypeError: a non-object reading, a
        # non-string ts, naive timestamps; ValueError: a ts that is not ISO 8601; OverflowError: a
        # huge integer. The reference path finds and names the problem.
        return None


def _columns(
    items: list[Any],
    topic: TopicParts,
    kind: DeviceKind,
    now: datetime,
    limits: Limits,
    rated_power_kw: float | None,
) -> ReadingColumns | None:
    first = items[0]
    if type(first) is not dict or "ts" not in first or set(map(type, items)) != {dict}:
        return None
    keys = list(first)
    # Same length and every key of the first reading present in each (itemgetter raises KeyError
    # otherwise) means the same key set: a field only some readings carry goes the reference way.
    if len(keys) < 2 or set(map(len, items)) != {len(keys)}:
        return None
    table = dict(zip(keys, zip(*map(itemgetter(*keys), items), strict=True), strict=True))  # column-wise

    allowed = KIND_FIELDS[kind]
    power_kw: list[float] | None = None
    stored: dict[str, list[float]] = {}
    for key, column in table.items():
        if key in _IDENTITY_KEYS:
            expected = topic.site_id if key == "site_id" else topic.device_id
            if column.count(expected) != len(column):
                return None  # another site or device named, or an identity that is not a string
            continue
        field = _FIELDS.get(key)
        if field is None:
            continue  # unknown fields are ignored, as in the reference path
        stem, scale = field
        values = _finite_floats(column, scale)
        if stem == "power":
            if power_kw is not None:
                return None  # power given twice (kW and W)
            power_kw = values
            continue
        name = allowed.get(stem)
        if name is None or name in stored:
            return None  # not a quantity of this kind, or given twice
        stored[name] = values
    if power_kw is None and not stored:
        return None

    ts = list(map(datetime.fromisoformat, table["ts"]))
    if len(set(ts)) != len(ts):
        return None  # a repeated instant: the reference path tells a repeat from a conflict
    newest = max(ts)  # naive timestamps raise TypeError against the aware clock below
    if newest > now + limits.future_tolerance or min(ts) < now - limits.max_age:
        return None
    if power_kw is not None and not _power_plausible(kind, power_kw, limits, rated_power_kw):
        return None
    for name in ("energy_pos_kwh", "energy_neg_kwh"):
        counter = stored.get(name)
        if counter is not None and not (min(counter) >= 0.0 and max(counter) <= limits.max_counter_kwh):
            return None
    soc = stored.get("soc_pct")
    if soc is not None and not (min(soc) >= 0.0 and max(soc) <= 100.0):
        return None
    vehicles: list[int] | None = None
    if "vehicles" in stored:
        counts = stored["vehicles"]
        vehicles = list(map(int, counts))
        if vehicles != counts or min(vehicles) < 0 or max(vehicles) > limits.max_vehicles:
            return None
    return ReadingColumns(
        ts=ts,
        power_kw=power_kw,
        energy_pos_kwh=stored.get("energy_pos_kwh"),
        energy_neg_kwh=stored.get("energy_neg_kwh"),
        soc_pct=stored.get("soc_pct"),
        vehicles=vehicles,
        newest=newest,
        ts_text=table["ts"],
    )


_COLUMNS_MIN_READINGS = 3
_IDENTITY_KEYS = frozenset({"site_id", "device_id"})
_NUMBER_TYPES = frozenset({float, int})


def _finite_floats(column: tuple[Any, ...], scale: float) -> list[float]:
    """The column as floats in the stored unit, or _NotCommonError if any value is not a finite number."""
    types = set(map(type, column))
    if types == {float}:
        values = list(column)
    elif types <= _NUMBER_TYPES:  # bool is its own type here, so `true` is not a number
        values = list(map(float, column))  # OverflowError for an integer beyond float range
    else:
        raise _NotCommonError
    # Any NaN or infinity makes the sum non-finite (so can an overflowing sum: the reference decides).
    if not math.isfinite(sum(values)):
        raise _NotCommonError
    if scale != 1.0:
        values = [v * scale for v in values]
    return values


def _power_plausible(kind: DeviceKind, power_kw: list[float], limits: Limits, rated_power_kw: float | None) -> bool:
    highest, lowest = max(power_kw), min(power_kw)
    if highest > limits.max_abs_power_kw or lowest < -limits.max_abs_power_kw:
        return False
    if rated_power_kw is not None:
        bound = rated_power_kw * limits.rated_power_factor + 1.0
        if highest > bound or lowest < -bound:
            return False
    # `is`, not `in (…)`: comparing StrEnum members by equality is slow enough to show per message.
    return not (lowest < -1.0 and (kind is DeviceKind.PV or kind is DeviceKind.EV_CHARGER))


def validate_reading(
    raw: RawReading,
    kind: DeviceKind,
    *,
    now: datetime,
    limits: Limits,
    rated_power_kw: float | None = None,
    where: str = "reading",
) -> Reading | Rejection:
    """Check one reading against its device's kind and physics; return it in stored form."""
    if raw.ts > now + limits.future_tolerance:
        return Rejection(
            RejectReason.FUTURE_TIMESTAMP,
            f"{where}.ts {raw.ts.isoformat()} is {(raw.ts - now).total_seconds():.0f} s ahead of the platform clock",
        )
    if raw.ts < now - limits.max_age:
        return Rejection(
            RejectReason.TOO_OLD, f"{where}.ts {raw.ts.isoformat()} is older than {limits.max_age.days} days"
        )
    allowed = KIND_FIELDS[kind]
    columns: dict[str, float] = {}
    for stem, value in raw.values.items():
        if stem == "power":
            continue
        column = allowed.get(stem)
        if column is None:
            return Rejection(RejectReason.INVALID_PAYLOAD, f"{where}: {stem} is not a quantity of a {kind} device")
        columns[column] = value
    power_kw = raw.values.get("power")
    if power_kw is None and not columns:
        return Rejection(RejectReason.INVALID_PAYLOAD, f"{where}: no quantity for a {kind} device")
    problem = _impossible(kind, power_kw, columns, limits, rated_power_kw)
    if problem:
        return Rejection(RejectReason.IMPOSSIBLE_VALUE, f"{where}: {problem}")
    vehicles = columns.get("vehicles")
    return Reading(
        ts=raw.ts,
        power_kw=power_kw,
        energy_pos_kwh=columns.get("energy_pos_kwh"),
        energy_neg_kwh=columns.get("energy_neg_kwh"),
        soc_pct=columns.get("soc_pct"),
        vehicles=int(vehicles) if vehicles is not None else None,
    )


def _impossible(
    kind: DeviceKind,
    power_kw: float | None,
    columns: Mapping[str, float],
    limits: Limits,
    rated_power_kw: float | None,
) -> str | None:
    if power_kw is not None:
        if abs(power_kw) > limits.max_abs_power_kw:
            return f"power {power_kw:.1f} kW exceeds {limits.max_abs_power_kw:.0f} kW"
        if rated_power_kw is not None and abs(power_kw) > rated_power_kw * limits.rated_power_factor + 1.0:
            return f"power {power_kw:.1f} kW exceeds {limits.rated_power_factor}x the device rating {rated_power_kw} kW"
        # PV inverters draw a few hundred watts at night; more than 1 kW of "negative generation"
        # is a wiring or sign error.
        if power_kw < -1.0 and (kind is DeviceKind.PV or kind is DeviceKind.EV_CHARGER):
            return f"power {power_kw:.1f} kW is negative for a {kind} device"
    for column in ("energy_pos_kwh", "energy_neg_kwh"):
        counter = columns.get(column)
        if counter is not None and not 0.0 <= counter <= limits.max_counter_kwh:
            return f"energy counter {counter} kWh is outside 0..{limits.max_counter_kwh:.0e}"
    soc = columns.get("soc_pct")
    if soc is not None and not 0.0 <= soc <= 100.0:
        return f"state of charge {soc}% is outside 0..100"
    vehicles = columns.get("vehicles")
    if vehicles is not None and (vehicles != int(vehicles) or not 0 <= vehicles <= limits.max_vehicles):
        return f"vehicles {vehicles} is not a count in 0..{limits.max_vehicles}"
    return None
