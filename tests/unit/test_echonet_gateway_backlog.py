"""The gateway's on-disk backlog: kept across restarts, bounded, emptied only by confirmation."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.backlog import Backlog


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
