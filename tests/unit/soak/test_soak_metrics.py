"""The soak's statistics on hand-computed histograms: quantiles, restarts, recovery times."""

from __future__ import annotations

import pytest

from bench.soak_metrics import (
    LAG_BOUNDS_S,
    Fault,
    Window,
    WorkerCounters,
    WorkerSample,
    cumulative,
    merge,
    quantile_s,
    recovery_s,
    share_within,
)

WIDTH = len(LAG_BOUNDS_S) + 1


def _histogram(**per_bound: float) -> tuple[float, ...]:
    """Cumulative buckets from counts per upper bound, e.g. `b0_1=50` for 50 observations in (0.05, 0.1]."""
    counts = [0.0] * WIDTH
    for key, count in per_bound.items():
        bound = float("inf") if key == "inf" else float(key[1:].replace("_", "."))
        counts[(*LAG_BOUNDS_S, float("inf")).index(bound)] = count
    return cumulative(counts)


def test_quantiles_interpolate_within_the_bucket_as_promql_does() -> None:
    buckets = _histogram(b0_1=50, b0_25=50)  # 50 in (0.05, 0.1], 50 in (0.1, 0.25]
    assert quantile_s(buckets, 0.5) == pytest.approx(0.1)  # rank 50 is the first bucket's top
    assert quantile_s(buckets, 0.99) == pytest.approx(0.1 + 0.15 * 49 / 50)
    assert quantile_s(buckets, 0.01) == pytest.approx(0.05 + 0.05 * 1 / 50)


def test_an_empty_histogram_has_no_quantile_and_the_inf_bucket_reports_its_floor() -> None:
    assert quantile_s((0.0,) * WIDTH, 0.99) is None
    assert share_within((0.0,) * WIDTH, 2.0) is None
    assert quantile_s(_histogram(b1_0=1, inf=99), 0.99) == 3600.0  # beyond the last bound: the bound itself


def test_share_within_a_bound_counts_observations_at_or_under_it() -> None:
    buckets = _histogram(b0_5=90, b2_0=9, b5_0=1)
    assert share_within(buckets, 2.0) == pytest.approx(0.99)
    assert share_within(buckets, 1.0) == pytest.approx(0.90)
    with pytest.raises(ValueError, match="not in tuple"):
        share_within(buckets, 1.5)  # not a bucket bound: no exact answer, so no answer


def test_merge_adds_workers_bucket_by_bucket() -> None:
    assert merge([_histogram(b0_1=2), _histogram(b0_1=1, b2_0=3)]) == _histogram(b0_1=3, b2_0=3)


def _sample(written: float, observations: float) -> WorkerSample:
    return WorkerSample(_histogram(b0_1=observations), written, 0.0, 0.0, 0.0, True)


def test_worker_counters_survive_a_restart_reported_or_not() -> None:
    counters = WorkerCounters()
    assert counters.advance(_sample(100, 10)).written == 100
    assert counters.advance(_sample(150, 15)).written == 50
    counters.restarted()  # SIGKILLed and started again: its counters begin at zero
    assert counters.advance(_sample(30, 3)).written == 30
    # A restart nobody reported shows as counters going backwards: counted from zero, never negative.
    assert counters.advance(_sample(20, 2)).written == 20
    assert counters.written == 200
    assert counters.lag_buckets[-1] == 20  # 10 + 5 + 3 + 2 observations


def _window(end_s: float, p99_under_target: bool, stored: float) -> Window:
    lag = _histogram(b0_5=100) if p99_under_target else _histogram(b5_0=100)
    return Window(
        end_s=end_s, length_s=1.0, lag_buckets=lag, written=0.0, stored_total=stored, published_total=0.0, workers_up=2
    )


def test_recovery_needs_two_good_windows_running_and_everything_acknowledged_stored() -> None:
    fault = Fault("broker restart", started_s=10.0, restored_s=12.0)
    windows = [
        _window(12.0, False, 100),  # before the restore: ignored
        _window(13.0, False, 120),
        _window(14.0, True, 150),
        _window(15.0, False, 180),  # one good window is not a recovery
        _window(16.0, True, 200),  # everything acknowledged at the restore (200) is stored here
        _window(17.0, True, 230),
    ]
    lag_back_s, caught_up_s = recovery_s(windows, fault, 2.0, published_at_restore=200)
    assert lag_back_s == pytest.approx(3.0)  # window (15, 16] starts 3 s after the restore
    assert caught_up_s == pytest.approx(4.0)


def test_recovery_is_unknown_when_the_service_never_came_back_or_never_caught_up() -> None:
    assert recovery_s([], Fault("kill", 1.0), 2.0, published_at_restore=10) == (None, None)
    windows = [_window(3.0, False, 5), _window(4.0, False, 6)]
    assert recovery_s(windows, Fault("kill", 1.0, restored_s=2.0), 2.0, published_at_restore=10) == (None, None)
