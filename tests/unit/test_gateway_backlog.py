"""The gateway's backlog of unconfirmed readings: released by confirmations, bounded, resent when due."""

from __future__ import annotations

import json

import pytest

from vpp.gateway_backlog import ConfirmationBacklog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def reading(second: int) -> dict[str, object]:
    return {"ts": f"2026-12-04T18:00:{second:02d}+09:00", "power_kw": 1.0}


def test_confirmation_in_utc_releases_readings_sent_with_an_offset() -> None:
    backlog = ConfirmationBacklog()
    for s in range(3):
        backlog.add("depot", "meter-1", reading(s))
    backlog.add("depot", "pv-1", reading(0))
    confirmation = {"v": 1, "stored": {"meter-1": ["2026-12-04T09:00:00Z", "2026-12-04T09:00:02Z"]}}
    assert backlog.confirm("depot", json.dumps(confirmation).encode()) == 2
    assert backlog.confirm("other-site", json.dumps(confirmation).encode()) == 0  # another site's readings stay
    assert len(backlog) == 2
    assert backlog.confirmed == 2


@pytest.mark.parametrize("payload", [b"", b"[]", b'{"stored": 1}', b'{"stored": {"m": [1]}}', b"\xff"])
def test_unreadable_confirmations_release_nothing_and_raise_nothing(payload: bytes) -> None:
    backlog = ConfirmationBacklog()
    backlog.add("depot", "m", reading(0))
    assert backlog.confirm("depot", payload) == 0
    assert len(backlog) == 1


def test_backlog_is_bounded_and_counts_what_it_gave_up() -> None:
    backlog = ConfirmationBacklog(max_readings=2)
    for s in range(5):
        backlog.add("depot", "m", reading(s))
    assert len(backlog) == 2
    assert backlog.given_up == 3
    assert [r["ts"] for p in backlog.due() for r in p.readings] == [reading(3)["ts"], reading(4)["ts"]]


def test_due_returns_what_waited_long_enough_in_messages_of_bounded_size() -> None:
    clock = Clock()
    backlog = ConfirmationBacklog(clock=clock)
    for s in range(5):
        backlog.add("depot", "m", reading(s))
    clock.now = 10.0
    backlog.add("depot", "m", reading(30))
    due = backlog.due(older_than_s=5.0, per_message=2)
    assert [len(p.readings) for p in due] == [2, 2, 1]
    assert backlog.due(older_than_s=5.0) == []  # just resent: not due again yet
    clock.now = 20.0
    assert sum(len(p.readings) for p in backlog.due(older_than_s=5.0)) == 6
