from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from vpp.domain.openadr import (
    SiteCall,
    dr_event_body,
    event_end,
    fill_from_reports,
    hide_targets,
    is_duration,
    parse_duration,
    usage_by_slot,
    visible_to_ven,
)

START = datetime(2030, 7, 1, 5, 0, tzinfo=UTC)  # 14:00 JST


def _call(kind: str = "peak_cut", limit: float | None = 40.0) -> SiteCall:
    return SiteCall("dr-1", kind, "depot-a", START, START + timedelta(hours=1), limit, 15.0, 2)


def test_peak_cut_is_an_import_capacity_limit_per_slot() -> None:
    body = dr_event_body(_call(), "program-1")
    assert body["programID"] == "program-1"
    assert body["targets"] == ["site:depot-a"]
    assert body["payloadDescriptors"] == [
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"}
    ]
    assert body["intervalPeriod"] == {"start": START.isoformat(), "duration": "PT30M"}
    assert body["intervals"] == [
        {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [40.0]}]},
        {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [40.0]}]},
    ]
    assert body["reportDescriptors"][0]["payloadType"] == "USAGE"
    assert body["reportDescriptors"][0]["units"] == "KWH"
    assert event_end(body) == START + timedelta(hours=1)


def test_peak_shift_and_limitless_peak_cut_are_simple_levels() -> None:
    for call in (_call("peak_shift", None), _call("peak_cut", None)):
        body = dr_event_body(call, "p")
        assert body["payloadDescriptors"][0]["payloadType"] == "SIMPLE"
        assert body["intervals"][0]["payloads"] == [{"type": "SIMPLE", "values": [2]}]


def test_increase_event_is_a_dispatch_setpoint_per_slot() -> None:
    call = SiteCall("dr-2", "peak_cut", "depot-a", START, START + timedelta(hours=1), None, 6.0, 1, (9.0, 11.5))
    body = dr_event_body(call, "p")
    assert body["payloadDescriptors"] == [
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "DISPATCH_SETPOINT", "units": "KW"}
    ]
    assert [i["payloads"] for i in body["intervals"]] == [
        [{"type": "DISPATCH_SETPOINT", "values": [9.0]}],
        [{"type": "DISPATCH_SETPOINT", "values": [11.5]}],
    ]
    with pytest.raises(ValueError, match="1 import floors for 2 slots"):
        dr_event_body(SiteCall("e", "peak_cut", "s", START, START + timedelta(hours=1), None, 1.0, 1, (1.0,)), "p")


def test_bad_dr_events_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        dr_event_body(_call("raise_dr"), "p")
    with pytest.raises(ValueError, match="timezone"):
        dr_event_body(SiteCall("e", "peak_cut", "s", START.replace(tzinfo=None), START, 1.0, 1.0, 1), "p")


def test_usage_by_slot_follows_interval_periods_and_units() -> None:
    resources: list[dict[str, Any]] = [
        {
            "resourceName": "meter",
            "intervalPeriod": {"start": "2030-07-01T14:00:00+09:00", "duration": "PT30M"},
            "intervals": [
                {"id": 0, "payloads": [{"type": "USAGE", "values": [1000]}]},
                {"id": 1, "payloads": [{"type": "USAGE", "values": [2500.0]}, {"type": "DEMAND", "values": [9]}]},
            ],
        },
        {
            "resourceName": "ev",
            "intervals": [
                {"id": 7, "intervalPeriod": {"start": "2030-07-01T05:30:00Z", "duration": "PT30M"},
                 "payloads": [{"type": "USAGE", "values": [500]}]},
            ],
        },
    ]  # fmt: skip
    assert usage_by_slot(resources, kwh_per_unit=0.001) == {START: 1.0, START + timedelta(minutes=30): 3.0}


@pytest.mark.parametrize(
    "period",
    [
        {"start": "2030-07-01T14:10:00+09:00", "duration": "PT30M"},
        {"start": "2030-07-01T14:00:00+09:00", "duration": "PT1H"},
    ],
)
def test_usage_must_be_whole_slots(period: dict[str, str]) -> None:
    resources = [
        {
            "resourceName": "m",
            "intervalPeriod": period,
            "intervals": [{"id": 0, "payloads": [{"type": "USAGE", "values": [1]}]}],
        }
    ]
    with pytest.raises(ValueError, match="30-minute"):
        usage_by_slot(resources)


def test_durations() -> None:
    assert parse_duration("PT30M") == timedelta(minutes=30)
    assert parse_duration("P1DT2H") == timedelta(days=1, hours=2)
    assert parse_duration("P2W") == timedelta(days=14)
    assert parse_duration("-PT1.5S") == -timedelta(seconds=1.5)
    assert is_duration("P9999Y")
    assert not is_duration("PT")
    with pytest.raises(ValueError, match="fixed length"):
        parse_duration("P9999Y")


def test_event_end_is_open_for_loops_and_infinity() -> None:
    assert event_end({"duration": "P9999Y", "intervals": []}) is None
    assert (
        event_end({"intervalPeriod": {"start": "2030-01-01T00:00:00Z", "duration": "P9999Y"}, "intervals": [{"id": 0}]})
        is None
    )
    assert event_end({"intervals": []}) is None


def test_visibility_and_target_hiding() -> None:
    assert visible_to_ven([], set())
    assert visible_to_ven(["a", "b"], {"b"})
    assert not visible_to_ven(["a"], {"b"})
    assert hide_targets(["a", "b", "c"], {"c", "a"}) == ["a", "c"]


def test_reports_fill_the_slots_the_meter_missed() -> None:
    assert fill_from_reports([1.0, None, 3.0], [9.0, 2.0, None]) == [1.0, 2.0, 3.0]
    assert fill_from_reports(None, [None, 2.0]) == [None, 2.0]
    assert fill_from_reports(None, [None, None]) is None
    with pytest.raises(ValueError, match="slots"):
        fill_from_reports([1.0], [1.0, 2.0])
