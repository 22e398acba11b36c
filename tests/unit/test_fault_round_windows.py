"""`vpp bench faults` verifies each round inside its own window of history: the windows must be
disjoint for the whole run and hold none of the start-up probe's readings, or a later round counts
rows that are not its own as duplicates (round 28 once did: the probe wrote a month back)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from bench.faults import probe_instant, round_window, run_anchor


def test_round_windows_are_disjoint_and_miss_the_probe_even_when_the_run_crosses_hours() -> None:
    started = datetime(2026, 12, 4, 12, 59, 58, 500_000, tzinfo=UTC)
    anchor = run_anchor(started)
    windows = [round_window(anchor, n) for n in range(300)]
    for (start, _end), (next_start, next_end) in itertools.pairwise(windows):
        assert next_end <= start
        assert next_start < next_end
    probe = probe_instant(started)
    assert not any(start <= probe < end for start, end in windows)
    # The anchor is the run's: a round that starts in the next hour keeps the same window.
    assert round_window(run_anchor(started), 5) == round_window(anchor, 5)
    assert run_anchor(started + timedelta(seconds=2)) != anchor  # which is why it is fixed per run
