"""Merging every event in effect at a site into its one retained signal."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from vpp.domain.dr_events import DrSignal, SignalEvent, SignalInterval, parse_signal, signal_payload
from vpp.domain.site_signal import EventPart, merge_intervals, site_signal

T0 = datetime(2026, 11, 20, 5, 0, tzinfo=UTC)  # 14:00 JST


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def part(event_id: str, *intervals: SignalInterval, direction: str = "reduce", revision: int = 1) -> EventPart:
    event = SignalEvent(event_id, revision, direction, intervals[0].start, intervals[-1].end)
    return EventPart(event, intervals)


def test_one_event_comes_back_unchanged() -> None:
    alone = (SignalInterval(at(0), at(2), 30.0),)
    assert merge_intervals([alone]) == alone


def test_overlapping_limits_keep_the_tighter_one_in_the_overlap_only() -> None:
    first = (SignalInterval(at(0), at(2), 30.0),)  # 14:00-16:00 JST at 30 kW
    second = (SignalInterval(at(1), at(3), 20.0),)  # 15:00-17:00 JST at 20 kW
    assert merge_intervals([first, second]) == (
        SignalInterval(at(0), at(1), 30.0),
        SignalInterval(at(1), at(3), 20.0),  # the overlap and the second's own hour join: both 20 kW
    )
    looser = (SignalInterval(at(1), at(3), 40.0),)
    assert merge_intervals([first, looser]) == (
        SignalInterval(at(0), at(2), 30.0),
        SignalInterval(at(2), at(3), 40.0),
    )


def test_floors_keep_the_highest_and_a_limit_caps_an_overlapping_floor() -> None:
    floors_a = (SignalInterval(at(0), at(1), None, 10.0), SignalInterval(at(1), at(2), None, 12.0))
    floors_b = (SignalInterval(at(0.5), at(1.5), None, 11.0),)
    assert merge_intervals([floors_a, floors_b]) == (
        SignalInterval(at(0), at(0.5), None, 10.0),
        SignalInterval(at(0.5), at(1), None, 11.0),
        SignalInterval(at(1), at(2), None, 12.0),
    )
    limit = (SignalInterval(at(1.5), at(2.5), 8.0),)
    assert merge_intervals([floors_a, limit]) == (
        SignalInterval(at(0), at(1), None, 10.0),
        SignalInterval(at(1), at(1.5), None, 12.0),
        SignalInterval(at(1.5), at(2), 8.0, 8.0),  # a floor never above the limit: the limit wins
        SignalInterval(at(2), at(2.5), 8.0),
    )


def test_gaps_between_events_stay_gaps() -> None:
    morning = (SignalInterval(at(-4), at(-3), 25.0),)
    afternoon = (SignalInterval(at(0), at(1), 25.0),)
    assert merge_intervals([afternoon, morning]) == morning + afternoon


def test_site_signal_names_the_change_and_lists_every_event_in_effect() -> None:
    a = part("ev-a", SignalInterval(at(0), at(2), 30.0), revision=2)
    b = part("ev-b", SignalInterval(at(1), at(3), 20.0))
    signal = site_signal(b.event, "peak_cut", [b, a], issued_at=T0)
    assert (signal.event_id, signal.revision, signal.status) == ("ev-b", 1, "active")
    assert [e.event_id for e in signal.events] == ["ev-a", "ev-b"]
    assert signal.intervals == merge_intervals([a.intervals, b.intervals])
    decoded = parse_signal(signal_payload(signal))
    assert decoded == signal


def test_cancelling_the_last_event_sends_an_empty_cancellation() -> None:
    a = part("ev-a", SignalInterval(at(0), at(2), 30.0))
    signal = site_signal(a.event, "peak_cut", [], issued_at=T0)
    assert (signal.status, signal.intervals, signal.events) == ("cancelled", (), ())
    assert "events" not in json.loads(signal_payload(signal))


def test_cancelling_one_of_two_keeps_the_other_active() -> None:
    a = part("ev-a", SignalInterval(at(0), at(2), 30.0))
    b = part("ev-b", SignalInterval(at(1), at(3), 20.0))
    signal = site_signal(a.event, "peak_cut", [b], issued_at=T0)
    assert signal == DrSignal("ev-a", 1, "peak_cut", "active", T0, b.intervals, (b.event,))
