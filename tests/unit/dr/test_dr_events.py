from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from vpp.domain.dr_events import (
    DrAck,
    DrSignal,
    EventStatus,
    IllegalTransition,
    SignalEvent,
    SignalInterval,
    ack_payload,
    check_transition,
    delivered_kwh,
    parse_ack,
    parse_signal,
    settle,
    signal_payload,
)

T0 = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        ("planned", "dispatched"),
        ("planned", "cancelled"),
        ("dispatched", "acknowledged"),
        ("dispatched", "dispatched"),  # adjusted and re-sent
        ("acknowledged", "dispatched"),
        ("acknowledged", "active"),
        ("dispatched", "active"),  # a site that never acks does not hold the event back
        ("active", "completed"),
        ("active", "cancelled"),
    ],
)
def test_allowed_transitions(current: str, new: str) -> None:
    assert check_transition(current, new) == EventStatus(new)


@pytest.mark.parametrize(
    ("current", "new"),
    [("planned", "active"), ("completed", "cancelled"), ("cancelled", "dispatched"), ("active", "dispatched")],
)
def test_forbidden_transitions_say_what_is_allowed(current: str, new: str) -> None:
    with pytest.raises(IllegalTransition, match=f"a {current} event cannot become {new}"):
        check_transition(current, new)


def test_signal_round_trip_carries_the_import_limit_as_openadr_payload() -> None:
    signal = DrSignal("ev-1", 2, "peak_cut", "active", T0, (SignalInterval(T0, T0 + timedelta(hours=1), 12.5),))
    body = signal_payload(signal)
    decoded = json.loads(body)
    assert decoded["intervals"][0]["payloads"] == [{"type": "IMPORT_CAPACITY_LIMIT", "value_kw": 12.5}]
    assert parse_signal(body) == signal


def test_cancellation_has_no_intervals() -> None:
    signal = DrSignal("ev-1", 3, "peak_cut", "cancelled", T0, ())
    assert parse_signal(signal_payload(signal)).status == "cancelled"


@pytest.mark.parametrize(
    "intervals",
    [
        (SignalInterval(T0, T0, 1.0),),
        (SignalInterval(T0, T0 + timedelta(hours=1), -1.0),),
        (SignalInterval(T0, T0 + timedelta(hours=1), 1.0), SignalInterval(T0, T0 + timedelta(hours=2), 1.0)),
        (SignalInterval(T0.replace(tzinfo=None), T0 + timedelta(hours=1), 1.0),),
    ],
)
def test_bad_intervals_are_refused(intervals: tuple[SignalInterval, ...]) -> None:
    with pytest.raises(ValueError, match=r"interval|limit|aware"):
        signal_payload(DrSignal("e", 1, "peak_cut", "active", T0, intervals))


@pytest.mark.parametrize("payload", [b"{", b"[]", b'{"version": 2}', b'{"version": 1, "event_id": "x"}'])
def test_malformed_signals_raise_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError, match="signal"):
        parse_signal(payload)


def test_ack_round_trip_and_rejection_of_unknown_status() -> None:
    ack = DrAck("ev-1", 2, accepted=False, ts=T0, detail="battery offline")
    assert parse_ack(ack_payload(ack)) == ack
    with pytest.raises(ValueError, match="accepted or rejected"):
        parse_ack(b'{"event_id": "e", "revision": 1, "status": "maybe", "ts": "2026-11-20T05:00:00+00:00"}')


def test_settlement_nets_slots_and_prices_the_positive_total() -> None:
    # 3 + 2 − 1 = 4 kWh delivered; one slot not metered; 4 kWh × 25 JPY/kWh = 100 JPY.
    result = settle([3.0, 2.0, -1.0, math.nan], 25.0)
    assert (result.delivered_kwh, result.settled_kwh, result.amount_jpy, result.missing_slots) == (4.0, 4.0, 100.0, 1)


def test_settlement_of_a_net_increase_is_zero_not_a_penalty() -> None:
    result = settle([-2.0, 1.0], 30.0)
    assert result.delivered_kwh == -1.0
    assert result.settled_kwh == 0.0
    assert result.amount_jpy == 0.0


def test_settlement_refuses_a_negative_incentive() -> None:
    with pytest.raises(ValueError, match="incentive"):
        settle([1.0], -5.0)


def test_import_floor_travels_beside_the_limit_and_an_old_message_still_parses() -> None:
    interval = SignalInterval(T0, T0 + timedelta(minutes=30), 40.0, 12.0)
    event = SignalEvent("ev-1", 2, "increase", T0, T0 + timedelta(minutes=30))
    signal = DrSignal("ev-1", 2, "peak_cut", "active", T0, (interval,), (event,))
    body = json.loads(signal_payload(signal))
    assert body["intervals"][0]["payloads"] == [
        {"type": "IMPORT_CAPACITY_LIMIT", "value_kw": 40.0},
        {"type": "IMPORT_FLOOR", "value_kw": 12.0},
    ]
    assert body["events"][0]["direction"] == "increase"
    assert parse_signal(signal_payload(signal)) == signal
    # A message from before floors and events: a limit-only interval, no "events" key.
    old = (
        b'{"version":1,"event_id":"e","revision":1,"kind":"peak_cut","status":"active",'
        b'"issued_at":"2026-11-20T05:00:00+00:00","intervals":[{"start":"2026-11-20T05:00:00+00:00",'
        b'"end":"2026-11-20T05:30:00+00:00","payloads":[{"type":"IMPORT_CAPACITY_LIMIT","value_kw":9.5}]}]}'
    )
    parsed = parse_signal(old)
    assert parsed.intervals == (SignalInterval(T0, T0 + timedelta(minutes=30), 9.5, None),)
    assert parsed.events == ()


def test_floor_above_the_limit_is_refused() -> None:
    interval = SignalInterval(T0, T0 + timedelta(minutes=30), 10.0, 12.0)
    with pytest.raises(ValueError, match="above the import limit"):
        signal_payload(DrSignal("e", 1, "peak_cut", "active", T0, (interval,)))


def test_delivery_is_the_reduction_or_the_increase() -> None:
    reductions = [2.0, -3.0, math.nan]  # baseline − actual per slot
    assert delivered_kwh(reductions, "reduce")[:2] == (2.0, -3.0)
    increase = delivered_kwh(reductions, "increase")
    assert increase[:2] == (-2.0, 3.0)
    assert math.isnan(increase[2])
    with pytest.raises(ValueError, match="sideways"):
        delivered_kwh(reductions, "sideways")


def test_signal_values_go_out_to_the_watt_and_keep_floor_under_limit() -> None:
    interval = SignalInterval(T0, T0 + timedelta(minutes=30), 0.1 + 0.2 + 2.7, 0.1 + 0.2 + 2.7 - 1e-12)
    signal = DrSignal("ev-1", 1, "peak_cut", "active", T0, (interval,))
    body = json.loads(signal_payload(signal))
    values = [p["value_kw"] for p in body["intervals"][0]["payloads"]]
    assert values == [3.0, 3.0]
    parsed = parse_signal(signal_payload(signal)).intervals[0]
    assert parsed.import_floor_kw is not None
    assert parsed.import_limit_kw is not None
    assert parsed.import_floor_kw <= parsed.import_limit_kw
