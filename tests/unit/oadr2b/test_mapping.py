"""3.1 event bodies → 2.0b signals and events, and 2.0b usage values → 3.1 USAGE reports."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from services.oadr2b.events import build_event
from vpp.domain.oadr2b import (
    event_intervals,
    event_status,
    kwh_per_unit,
    signal_from_event_body,
    signal_from_json,
    usage_report_body,
    usage_slots,
)
from vpp.domain.openadr import SiteCall, dr_event_body, usage_by_slot
from vpp.domain.slots import JST

START = datetime(2030, 7, 1, 14, 0, tzinfo=JST)
HALF = timedelta(minutes=30)


def _body(kind: str = "peak_cut", limit: float | None = 40.0, floors: tuple[float, ...] | None = None) -> dict:  # type: ignore[type-arg]
    call = SiteCall("ev-1", kind, "depot-a", START, START + 2 * HALF, limit, 10.0, 3, floors)
    return dr_event_body(call, "program-1")


def test_peak_cut_limit_becomes_a_load_dispatch_setpoint_per_slot() -> None:
    signal = signal_from_event_body(_body())
    assert (signal.signal_name, signal.signal_type, signal.units) == ("LOAD_DISPATCH", "setpoint", "KW")
    assert signal.values == (40.0, 40.0)
    assert (signal.start_at, signal.end_at) == (START, START + 2 * HALF)
    assert signal.payload_type == "IMPORT_CAPACITY_LIMIT"
    assert signal.event_name.endswith("r3")  # the scheduler's revision travels in the vtnComment


def test_floors_and_simple_levels() -> None:
    floors = signal_from_event_body(_body(floors=(12.0, 14.5)))
    assert (floors.signal_name, floors.values, floors.payload_type) == (
        "LOAD_DISPATCH",
        (12.0, 14.5),
        "DISPATCH_SETPOINT",
    )
    shift = signal_from_event_body(_body(kind="peak_shift", limit=None))
    assert (shift.signal_name, shift.signal_type, shift.units, shift.values) == ("SIMPLE", "level", None, (2.0, 2.0))


def test_bodies_the_2b_vtn_cannot_carry_are_refused_with_a_reason() -> None:
    body = _body()
    body["payloadDescriptors"] = [{"payloadType": "PRICE"}]
    with pytest.raises(ValueError, match="payload"):
        signal_from_event_body(body)
    body = _body()
    body["intervalPeriod"]["duration"] = "PT15M"
    with pytest.raises(ValueError, match="30-minute"):
        signal_from_event_body(body)


def test_signal_survives_its_json_round_trip_so_unchanged_events_are_not_resent() -> None:
    signal = signal_from_event_body(_body())
    assert signal_from_json(signal.to_json()) == signal
    changed = signal_from_event_body(_body(limit=35.0))
    assert signal_from_json(signal.to_json()) != changed


def test_event_status_follows_the_clock_unless_cancelled() -> None:
    signal = signal_from_event_body(_body())
    assert event_status(signal, START - HALF) == "far"
    assert event_status(signal, START + HALF) == "active"
    assert event_status(signal, START + 2 * HALF) == "completed"
    assert event_status(signal, START + HALF, cancelled=True) == "cancelled"


def test_built_event_keeps_cancelled_status_and_kw_item_base() -> None:
    signal = signal_from_event_body(_body())
    event = build_event("dr-ev-1-depot-a", 2, signal, status="cancelled", ven_id="VEN-A",
                        market_context="urn:x", modified_at=START)  # fmt: skip
    assert event["event_descriptor"]["event_status"] == "cancelled"
    assert event["event_descriptor"]["modification_number"] == 2
    [sent] = event["event_signals"]
    assert [i["signal_payload"] for i in sent["intervals"]] == [40.0, 40.0]
    assert [i["dtstart"] for i in sent["intervals"]] == [START, START + HALF]
    assert (sent["measurement"]["unit"], sent["measurement"]["scale"]) == ("W", "k")
    assert event["active_period"]["duration"] == 2 * HALF


def test_energy_units_and_scales() -> None:
    assert kwh_per_unit("Wh", "k") == 1.0
    assert kwh_per_unit("Wh", "none") == pytest.approx(0.001)
    assert kwh_per_unit("Wh", "M") == 1000.0
    with pytest.raises(ValueError, match="energy"):
        kwh_per_unit("W", "k")
    with pytest.raises(ValueError, match="scale"):
        kwh_per_unit("Wh", "G")


def test_usage_values_are_taken_per_begun_slot_and_garbage_is_dropped_with_reasons() -> None:
    now = START + HALF + timedelta(minutes=5)
    values = [
        (START, 18.5),
        (START + HALF, 19.0),
        (START + 2 * HALF, 5.0),  # not begun yet
        (START + timedelta(minutes=10), 3.0),  # not a slot start
        (datetime(2030, 7, 1, 5, 0), 1.0),  # naive  # noqa: DTZ001
        (START - HALF, math.nan),
    ]
    slots, dropped = usage_slots(values, 1.0, now)  # type: ignore[arg-type]
    assert slots == {START: 18.5, START + HALF: 19.0}
    assert len(dropped) == 4
    assert any("future" in d for d in dropped)
    assert any("not a number" in d for d in dropped)


def test_usage_report_body_reads_back_through_the_3_1_verification_parser() -> None:
    slots = {START.astimezone(UTC): 18.5, (START + HALF).astimezone(UTC): 19.25}
    body = usage_report_body("dr-ev-1-depot-a", "program-1", "ven-depot-a", "meter-1", slots)
    assert body["payloadDescriptors"][0]["units"] == "KWH"
    assert usage_by_slot(body["resources"]) == {START: 18.5, START + HALF: 19.25}


def _sent(body: dict, status: str = "far") -> dict:  # type: ignore[type-arg]
    """The oadrEvent the VTN builds for a 3.1 body, as the VEN's EMS receives it."""
    return build_event("e-1", 0, signal_from_event_body(body), status=status, ven_id="VEN-A",
                       market_context="urn:test", modified_at=START)  # fmt: skip


def test_the_ven_side_reads_back_the_limits_and_floors_the_scheduler_meant() -> None:
    limits = event_intervals(_sent(_body()))
    assert [(i.start, i.end, i.import_limit_kw, i.import_floor_kw) for i in limits] == [
        (START, START + HALF, 40.0, None), (START + HALF, START + 2 * HALF, 40.0, None)]  # fmt: skip
    floors = event_intervals(_sent(_body(floors=(12.0, 15.0))))
    assert [(i.import_limit_kw, i.import_floor_kw) for i in floors] == [(None, 12.0), (None, 15.0)]
    simple = event_intervals(_sent(_body("peak_shift", limit=None)))
    assert [(i.import_limit_kw, i.import_floor_kw) for i in simple] == [(None, None)] * 2  # no kW to hold to
    assert event_intervals(_sent(_body(), status="cancelled")) == ()


def test_the_ven_side_refuses_what_it_cannot_read() -> None:
    event = _sent(_body())
    event["event_signals"][0]["signal_name"] = "ELECTRICITY_PRICE"
    with pytest.raises(ValueError, match="not one the EMS obeys"):
        event_intervals(event)
    event = _sent(_body())
    event["event_signals"][0]["measurement"]["scale"] = "none"
    with pytest.raises(ValueError, match="kW"):
        event_intervals(event)
    event = _sent(_body())
    event["event_signals"][0]["intervals"][0]["signal_payload"] = -1.0
    with pytest.raises(ValueError, match="not a power"):
        event_intervals(event)
