"""The gateway's on-disk backlog: kept across restarts, bounded, emptied only by confirmation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.gateway.backlog import Backlog
from services.gateway.publisher import reading_key


def test_messages_survive_a_restart_until_confirmed(tmp_path: Path) -> None:
    path = tmp_path / "backlog.sqlite3"
    backlog = Backlog(path)
    first = backlog.append("vpp/v1/s/meter-1/telemetry", b'{"n":1}')
    second = backlog.append("vpp/v1/s/meter-1/telemetry", b'{"n":2}')
    backlog.close()
    reopened = Backlog(path)
    assert [(p.seq, p.payload) for p in reopened.pending()] == [(first, b'{"n":1}'), (second, b'{"n":2}')]
    reopened.confirm([first])
    assert [p.seq for p in reopened.pending()] == [second]
    assert [p.seq for p in reopened.pending(after_seq=second)] == []
    third = reopened.append("t", b"3")
    assert third > second  # sequence numbers never reused, even after a confirmation
    reopened.close()


def test_the_bound_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path / "b.sqlite3", max_messages=3)
    seqs = [backlog.append("t", str(n).encode()) for n in range(5)]
    assert [p.seq for p in backlog.pending()] == seqs[2:]
    assert backlog.dropped() == 2
    assert backlog.size() == 3
    with pytest.raises(ValueError, match="at least 1"):
        Backlog(tmp_path / "c.sqlite3", max_messages=0)


def test_readings_are_found_by_device_and_instant_whatever_the_text(tmp_path: Path) -> None:
    """The platform confirms `ts` as the gateway sent it or in UTC: the key is the instant."""
    backlog = Backlog(tmp_path / "k.sqlite3")
    sent = reading_key("meter-1", "2026-11-23T14:00:05.120+09:00")
    assert sent is not None
    seq = backlog.append("vpp/v1/s/meter-1/telemetry", b"{}", sent)
    other = backlog.append("vpp/v1/s/pv-1/telemetry", b"{}", reading_key("pv-1", "2026-11-23T05:00:05.12Z"))
    assert backlog.seqs_for([k for k in [reading_key("meter-1", "2026-11-23T05:00:05.120Z")] if k]) == [seq]
    assert backlog.seqs_for([k for k in [reading_key("meter-1", "2026-11-23T05:00:05.121Z")] if k]) == []
    assert reading_key("meter-1", "2026-11-23T05:00:05") is None  # naive: no instant to match
    assert reading_key("meter-1", None) is None
    assert backlog.pending_seqs(other) == [seq, other]
    assert [p.seq for p in backlog.get([other, seq, 999])] == [seq, other]
    backlog.close()


def test_a_backlog_file_from_before_keys_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE backlog (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL)"
    )
    db.execute("INSERT INTO backlog (topic, payload) VALUES ('t', x'7b7d')")
    db.commit()
    db.close()
    backlog = Backlog(path)
    assert [p.payload for p in backlog.pending()] == [b"{}"]  # still sent until confirmed (after a reconnect)
    key = reading_key("meter-1", "2026-11-23T05:00:05Z")
    assert key is not None
    seq = backlog.append("t", b"{}", key)
    assert backlog.seqs_for([key]) == [seq]
    backlog.close()
