"""Payload decoding and validation: every rejection class, units, signs, SenML."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from vpp.domain.devices import DeviceKind
from vpp.domain.telemetry import (
    JsonBody,
    Limits,
    RawReading,
    Reading,
    Rejection,
    RejectReason,
    TopicParts,
    decode_body,
    decode_payload,
    load_json,
    parse_topic,
    validate_columns,
    validate_reading,
)

NOW = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
TS = "2026-11-23T13:59:30+09:00"


def decode(body: object, max_bytes: int = 10_000) -> list[RawReading] | Rejection:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return decode_payload(payload, received_at=NOW, max_bytes=max_bytes)


def one(body: object, kind: DeviceKind = DeviceKind.METER, rated: float | None = None) -> Reading | Rejection:
    raws = decode(body)
    assert isinstance(raws, list), raws
    return validate_reading(raws[0], kind, now=NOW, limits=Limits(), rated_power_kw=rated)


def reason(outcome: object) -> RejectReason:
    assert isinstance(outcome, Rejection), outcome
    return outcome.reason


def test_topic_parts() -> None:
    assert parse_topic("vpp/v1/depot/meter-1/telemetry") == TopicParts("depot", "meter-1")
    assert reason(parse_topic("vpp/v1/depot/telemetry")) is RejectReason.BAD_TOPIC
    assert reason(parse_topic("vpp/v2/depot/m/telemetry")) is RejectReason.BAD_TOPIC
    assert reason(parse_topic("vpp/v1//m/telemetry")) is RejectReason.BAD_TOPIC


def test_single_reading_in_watts_is_stored_in_kilowatts() -> None:
    reading = one({"ts": TS, "power_w": 12500, "import_wh": 1_000_500, "export_kwh": 3})
    assert reading == Reading(
        ts=datetime(2026, 11, 23, 4, 59, 30, tzinfo=UTC),
        power_kw=12.5,
        energy_pos_kwh=1000.5,
        energy_neg_kwh=3.0,
        soc_pct=None,
        vehicles=None,
    )


def test_rfc3339_lower_case_t_and_z_are_accepted() -> None:
    # RFC 3339 section 5.6: "T" and "Z" may alternatively be lower case. They were refused as "not RFC 3339".
    assert one({"ts": "2026-11-23t04:59:30z", "power_kw": 1.0}) == one({"ts": "2026-11-23T04:59:30Z", "power_kw": 1.0})
    batch = decode({"readings": [{"ts": f"2026-11-23t04:59:{s:02d}z", "power_kw": 1.0} for s in (10, 20, 30)]})
    assert isinstance(batch, list)
    assert [r.ts.second for r in batch] == [10, 20, 30]
    assert reason(decode({"ts": "2026-11-23x04:59:30y", "power_kw": 1.0})) is RejectReason.INVALID_PAYLOAD


def test_battery_signs_map_discharge_to_positive_counter() -> None:
    reading = one(
        {"ts": TS, "power_kw": -4.0, "soc_pct": 55.5, "charge_kwh": 10, "discharge_kwh": 8}, DeviceKind.BATTERY
    )
    assert isinstance(reading, Reading)
    assert (reading.power_kw, reading.energy_pos_kwh, reading.energy_neg_kwh, reading.soc_pct) == (
        -4.0,
        8.0,
        10.0,
        55.5,
    )


def test_batch_is_decoded_in_order() -> None:
    raws = decode({"readings": [{"ts": TS, "power_kw": 1}, {"ts": "2026-11-23T05:00:00Z", "power_kw": 2}]})
    assert isinstance(raws, list)
    assert [r.values["power"] for r in raws] == [1.0, 2.0]
    assert raws[1].ts == NOW


def test_senml_pack_groups_records_by_time_and_converts_units() -> None:
    base = NOW.timestamp()
    raws = decode(
        [
            {"bn": "urn:dev:depot:battery-1:", "bt": base, "n": "power", "u": "W", "v": -2500},
            {"n": "soc", "u": "%EL", "v": 61},
            {"n": "charge", "u": "Wh", "v": 5000},
            {"n": "power", "u": "kW", "v": -2.0, "t": 10},
        ]
    )
    assert isinstance(raws, list)
    assert [r.ts for r in raws] == [NOW, NOW + timedelta(seconds=10)]
    assert raws[0].values == {"power": -2.5, "soc": 61.0, "charge": 5.0}
    assert raws[1].values == {"power": -2.0}


def test_senml_pack_naming_several_devices_is_a_topic_mismatch() -> None:
    # The topic names the device. A pack whose base names change from one device to another (a gateway
    # batching its devices) stored the PV's power as the meter's grid import, where a JSON reading naming
    # another device is refused as topic_mismatch.
    base = NOW.timestamp()
    outcome = decode(
        [
            {"bn": "urn:dev:meter-1:", "bt": base, "n": "power", "u": "W", "v": 1000},
            {"bn": "urn:dev:pv-1:", "n": "power", "u": "W", "v": 5000, "t": 1},
        ]
    )
    assert reason(outcome) is RejectReason.TOPIC_MISMATCH
    assert "urn/dev/meter-1" in outcome.detail  # type: ignore[union-attr]
    assert "urn/dev/pv-1" in outcome.detail  # type: ignore[union-attr]
    by_name = decode(
        [{"bt": base, "n": "meter-1/power", "u": "W", "v": 1}, {"n": "pv-1/power", "u": "W", "v": 2, "t": 1}]
    )
    assert reason(by_name) is RejectReason.TOPIC_MISMATCH


def test_senml_pack_of_one_device_keeps_working_whatever_else_it_names() -> None:
    base = NOW.timestamp()
    one_device = [
        {"bn": "urn:dev:mac:0024befffe804ff1:", "bt": base, "n": "power", "u": "W", "v": 1000},
        {"n": "energy", "u": "Wh", "v": 5000},
        {"bn": "urn:dev:mac:0024befffe804ff1:", "n": "power", "u": "W", "v": 1100, "t": 10},  # bn repeated
        {"n": "inverter/temperature", "u": "Cel", "v": 41.5},  # not a contract quantity: ignored as before
        {"bn": "urn:dev:other:", "n": "humidity", "u": "%RH", "v": 40},
    ]
    raws = decode(one_device)
    assert isinstance(raws, list)
    assert [r.values for r in raws] == [{"power": 1.0, "energy": 5.0}, {"power": 1.1}]
    no_names = decode([{"bt": base, "n": "power", "u": "W", "v": 1}, {"n": "energy", "u": "Wh", "v": 2}])
    assert isinstance(no_names, list)


def test_senml_relative_time_is_refused_because_a_redelivery_would_be_stored_again() -> None:
    # Resolved against the receive time, the same message redelivered a minute later would land as
    # new rows (200 messages became 400 rows); refusing it names the fix instead.
    outcome = decode([{"n": "power", "u": "W", "v": 1000, "t": -30}])
    assert reason(outcome) is RejectReason.INVALID_PAYLOAD
    assert "relative SenML time" in outcome.detail  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "records",
    [
        [{"bt": 1e20, "n": "power", "u": "W", "v": 1}],  # beyond any datetime
        [{"bt": -1e12, "n": "power", "u": "W", "v": 1}],
        [{"bt": NOW.timestamp(), "n": "power", "u": ["W"], "v": 1}],  # a unit that is not a string
        [{"bt": NOW.timestamp(), "n": "power", "bu": {"x": 1}, "v": 1}],
    ],
)
def test_senml_garbage_times_and_units_are_invalid_not_processing_errors(records: list[object]) -> None:
    assert reason(decode(records)) is RejectReason.INVALID_PAYLOAD


def test_conflicting_readings_for_one_instant_are_refused_and_exact_repeats_kept_once() -> None:
    one = {"ts": TS, "power_kw": 1.0}
    conflicting = decode({"readings": [one, {"ts": "2026-11-23T04:59:30+00:00", "power_kw": 2.0}]})
    assert reason(conflicting) is RejectReason.CONFLICTING_READINGS
    assert "readings[0] and readings[1]" in conflicting.detail  # type: ignore[union-attr]
    repeated = decode({"readings": [one, dict(one), {"ts": TS, "power_kw": 1.0}]})
    assert isinstance(repeated, list)
    assert len({r.ts for r in repeated}) == 1
    senml = decode(
        [
            {"bt": NOW.timestamp(), "n": "power", "u": "W", "v": 1},
            {"bt": NOW.timestamp(), "n": "power", "u": "W", "v": 2},
        ]
    )
    assert reason(senml) is RejectReason.INVALID_PAYLOAD


def test_senml_wrong_unit_is_named() -> None:
    outcome = decode([{"n": "power", "u": "Wh", "v": 1}])
    assert reason(outcome) is RejectReason.INVALID_PAYLOAD
    assert "senml[0].u" in outcome.detail  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{not json", RejectReason.MALFORMED_JSON),
        (b"\xff\xfe", RejectReason.MALFORMED_JSON),
        (b'"text"', RejectReason.INVALID_PAYLOAD),
        (b'{"readings": []}', RejectReason.INVALID_PAYLOAD),
        (b'{"power_kw": 1}', RejectReason.INVALID_PAYLOAD),
        (b'{"ts": "yesterday", "power_kw": 1}', RejectReason.INVALID_PAYLOAD),
        (b'{"ts": "2026-11-23T05:00:00", "power_kw": 1}', RejectReason.INVALID_PAYLOAD),
        (b'{"ts": "2026-11-23T05:00:00Z", "power_kw": "12"}', RejectReason.INVALID_PAYLOAD),
        (b'{"ts": "2026-11-23T05:00:00Z", "power_kw": true}', RejectReason.INVALID_PAYLOAD),
        (b'{"ts": "2026-11-23T05:00:00Z", "power_kw": NaN}', RejectReason.NON_FINITE),
        (b'{"ts": "2026-11-23T05:00:00Z", "power_kw": -Infinity}', RejectReason.NON_FINITE),
        (b'{"ts": "2026-11-23T05:00:00Z", "power_kw": 1e400}', RejectReason.NON_FINITE),
        (b"[" * 100_000, RejectReason.OVERSIZED),
    ],
)
def test_undecodable_payloads_are_rejected_with_their_reason(payload: bytes, expected: RejectReason) -> None:
    assert reason(decode(payload, max_bytes=50_000)) is expected


def test_deep_nesting_within_the_size_limit_is_rejected_not_crashing() -> None:
    assert reason(decode(b"[" * 20_000, max_bytes=50_000)) in {
        RejectReason.MALFORMED_JSON,
        RejectReason.INVALID_PAYLOAD,
    }


def test_too_many_readings_in_a_batch() -> None:
    body = {"readings": [{"ts": TS, "power_kw": 1}] * 6}
    outcome = decode_payload(
        json.dumps(body).encode(), received_at=NOW, max_bytes=10_000, limits=Limits(max_batch_readings=5)
    )
    assert reason(outcome) is RejectReason.OVERSIZED


@pytest.mark.parametrize(
    ("body", "kind", "rated", "expected"),
    [
        ({"ts": TS, "soc_pct": 101}, DeviceKind.BATTERY, None, RejectReason.IMPOSSIBLE_VALUE),
        ({"ts": TS, "power_kw": 68.6}, DeviceKind.PV, 45.0, RejectReason.IMPOSSIBLE_VALUE),
        ({"ts": TS, "power_kw": -5}, DeviceKind.PV, None, RejectReason.IMPOSSIBLE_VALUE),
        ({"ts": TS, "power_kw": 200_000}, DeviceKind.METER, None, RejectReason.IMPOSSIBLE_VALUE),
        ({"ts": TS, "import_kwh": -1}, DeviceKind.METER, None, RejectReason.IMPOSSIBLE_VALUE),
        ({"ts": TS, "vehicles": 2.5}, DeviceKind.EV_CHARGER, None, RejectReason.IMPOSSIBLE_VALUE),
        ({"ts": TS, "soc_pct": 50}, DeviceKind.METER, None, RejectReason.INVALID_PAYLOAD),
        ({"ts": TS, "firmware": "1.2"}, DeviceKind.METER, None, RejectReason.INVALID_PAYLOAD),
        ({"ts": "2026-11-23T05:05:01Z", "power_kw": 1}, DeviceKind.METER, None, RejectReason.FUTURE_TIMESTAMP),
        ({"ts": "2024-01-01T00:00:00Z", "power_kw": 1}, DeviceKind.METER, None, RejectReason.TOO_OLD),
    ],
)
def test_validation_rejections(
    body: dict[str, object], kind: DeviceKind, rated: float | None, expected: RejectReason
) -> None:
    assert reason(one(body, kind, rated)) is expected


def test_within_tolerances_is_accepted() -> None:
    assert isinstance(one({"ts": "2026-11-23T05:04:59Z", "power_kw": 67.0}, DeviceKind.PV, 45.0), Reading)
    assert isinstance(one({"ts": TS, "power_kw": -0.3}, DeviceKind.PV), Reading)  # inverter standby draw
    assert isinstance(one({"ts": TS, "vehicles": 25, "energy_kwh": 1.0}, DeviceKind.EV_CHARGER), Reading)


def test_unknown_extra_fields_are_ignored_but_recorded_identity_is_kept() -> None:
    raws = decode({"ts": TS, "power_kw": 1, "rssi_dbm": -70, "site_id": "depot", "device_id": "meter-1"})
    assert isinstance(raws, list)
    assert raws[0].values == {"power": 1.0}
    assert (raws[0].site_id, raws[0].device_id) == ("depot", "meter-1")


# -- the columnar fast path must agree with the reference path ----------------------------------

KIND_BODIES: dict[DeviceKind, dict[str, object]] = {
    DeviceKind.METER: {"power_kw": 12.5, "import_kwh": 1043.2, "export_kwh": 210.0},
    DeviceKind.PV: {"power_w": 30_500, "energy_kwh": 88.0},
    DeviceKind.BATTERY: {"power_kw": -4.0, "charge_wh": 10_000, "discharge_kwh": 8, "soc_pct": 55.5},
    DeviceKind.EV_CHARGER: {"power_kw": 22.0, "energy_kwh": 301.5, "vehicles": 3},
}
TOPIC = TopicParts("depot", "dev-1")


def _batch(kind: DeviceKind, n: int = 50) -> list[dict[str, object]]:
    return [{"ts": (NOW - timedelta(seconds=60 * (n - k))).isoformat(), **KIND_BODIES[kind]} for k in range(n)]


def _reference(
    payload: bytes, kind: DeviceKind, rated: float | None, limits: Limits
) -> list[tuple[object, ...]] | None:
    """Rows from decode_body + validate_reading, or None if the reference rejects the message."""
    body = load_json(payload, max_bytes=1 << 20)
    raws = body if isinstance(body, Rejection) else decode_body(body, received_at=NOW, limits=limits)
    if isinstance(raws, Rejection):
        return None
    rows: list[tuple[object, ...]] = []
    for raw in raws:
        if (raw.site_id not in (None, TOPIC.site_id)) or (raw.device_id not in (None, TOPIC.device_id)):
            return None
        checked = validate_reading(raw, kind, now=NOW, limits=limits, rated_power_kw=rated)
        if isinstance(checked, Rejection):
            return None
        rows.append(
            (
                checked.ts,
                checked.power_kw,
                checked.energy_pos_kwh,
                checked.energy_neg_kwh,
                checked.soc_pct,
                checked.vehicles,
            )
        )
    return rows


def _fast(payload: bytes, kind: DeviceKind, rated: float | None, limits: Limits) -> list[tuple[object, ...]] | None:
    body = load_json(payload, max_bytes=1 << 20)
    assert not isinstance(body, Rejection)
    columns = validate_columns(body, TOPIC, kind, now=NOW, limits=limits, rated_power_kw=rated)
    if columns is None:
        return None
    n = len(columns.ts)
    none = [None] * n
    return list(
        zip(
            columns.ts,
            columns.power_kw or none,
            columns.energy_pos_kwh or none,
            columns.energy_neg_kwh or none,
            columns.soc_pct or none,
            columns.vehicles or none,
            strict=True,
        )
    )


_ODD_VALUES: list[object] = [
    True,
    "12",
    None,
    [1.0],
    {"v": 1},
    -1.0,
    -1.5,
    0,
    -0.0,
    101,
    2.5,
    10**400,
    1e308,
    150_000.0,
    3,
    70.0,
    "NaN",
]
_ODD_TS: list[object] = [
    "2026-11-23T05:00:00",
    "yesterday",
    1_700_000_000,
    "2026-11-23T05:05:01Z",
    "2024-01-01T00:00:00Z",
    "2026-11-23T14:04:59+09:00",
    "2026-11-23T04:00:00.123456Z",
    "2026-11-23 04:00:00+00:00",
]


def _variants(kind: DeviceKind, rng: random.Random) -> list[bytes]:
    """A clean batch, then the same batch with one thing changed in one reading (or in all of them)."""
    out: list[bytes] = [json.dumps({"readings": _batch(kind)}).encode()]
    fields = [*KIND_BODIES[kind], "ts"]
    other_fields = [
        "power_w",
        "power_kw",
        "import_kwh",
        "export_wh",
        "energy_kwh",
        "soc_pct",
        "vehicles",
        "charge_kwh",
        "discharge_wh",
        "rssi_dbm",
        "site_id",
        "device_id",
        "readings",
    ]
    for _ in range(150):
        batch = _batch(kind, rng.choice([3, 4, 50]))
        targets = batch if rng.random() < 0.3 else [rng.choice(batch)]
        change = rng.randrange(5)
        for reading in targets:
            if change == 0:
                reading[rng.choice(fields)] = rng.choice(_ODD_VALUES)
            elif change == 1:
                reading["ts"] = rng.choice(_ODD_TS)
            elif change == 2:
                del reading[rng.choice(fields)]
            elif change == 3:
                key = rng.choice(other_fields)
                reading[key] = rng.choice([*_ODD_VALUES, "depot", "dev-1", "elsewhere", 5.0, 5])
            else:
                reading.pop(rng.choice(fields), None)
                reading[rng.choice(other_fields)] = rng.choice([1.0, 2, "depot"])
        out.append(json.dumps({"readings": batch}).encode())
    text = json.dumps({"readings": _batch(kind)})
    out.append(text.replace("12.5", "NaN", 1).replace("30500", "Infinity", 1).replace("-4.0", "-Infinity", 1).encode())
    return out


@pytest.mark.parametrize("kind", list(DeviceKind))
@pytest.mark.parametrize("rated", [None, 25.0])
def test_columnar_fast_path_accepts_only_what_the_reference_accepts_with_equal_rows(
    kind: DeviceKind, rated: float | None
) -> None:
    rng = random.Random(f"{kind}-{rated}")
    limits = Limits()
    fast_accepted = 0
    for payload in _variants(kind, rng):
        reference, fast = _reference(payload, kind, rated, limits), _fast(payload, kind, rated, limits)
        if fast is not None:
            fast_accepted += 1
            assert reference is not None, payload[:300]
            # Same values and the same Python types (the COPY dumpers care about int versus float).
            assert [[(type(v), v) for v in row] for row in fast] == [[(type(v), v) for v in row] for row in reference]
    assert fast_accepted >= 1  # the clean batch at least


def test_columnar_fast_path_leaves_single_readings_senml_and_mixed_fields_to_the_reference() -> None:
    limits = Limits()

    def fast(body: object) -> object:
        parsed = load_json(json.dumps(body).encode(), max_bytes=1 << 20)
        assert not isinstance(parsed, Rejection)
        return validate_columns(parsed, TOPIC, DeviceKind.METER, now=NOW, limits=limits)

    assert fast({"ts": TS, "power_kw": 1.0}) is None
    assert fast([{"n": "power", "u": "W", "v": 1000}]) is None
    mixed = _batch(DeviceKind.METER, 5)
    mixed[2] = {"ts": mixed[2]["ts"], "power_kw": 1.0, "soc_pct": 50.0, "rssi": 1}  # same width, other keys
    assert fast({"readings": mixed}) is None
    assert fast({"readings": _batch(DeviceKind.METER, 5)}) is not None


def test_json_parser_fallback_keeps_what_json_loads_accepts() -> None:
    # pydantic-core refuses a UTF-8 BOM and lone surrogates; json.loads accepts them, and so do we.
    assert isinstance(load_json(b'\xef\xbb\xbf{"ts": "x"}', max_bytes=100), JsonBody)
    assert isinstance(load_json(b'{"note": "\\ud800"}', max_bytes=100), JsonBody)
    assert reason(load_json(b'{"a": 1,}', max_bytes=100)) is RejectReason.MALFORMED_JSON
