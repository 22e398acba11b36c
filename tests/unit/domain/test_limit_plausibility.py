"""The scheduler's last check before a limit leaves: above the rating or far above history is refused."""

from __future__ import annotations

from vpp.domain.limit_plausibility import MIN_HISTORY_SLOTS, SiteCapacity, implausible_limit


def test_limit_above_rated_import_is_refused_with_the_figures() -> None:
    why = implausible_limit(6577.0, SiteCapacity("depot", rated_import_kw=340.0, history_p95_kw=None))
    assert why is not None
    assert "6577.0 kW" in why
    assert "rated import 340.0 kW" in why


def test_limit_far_above_history_is_refused_only_with_enough_history() -> None:
    much = SiteCapacity("depot", rated_import_kw=None, history_p95_kw=20.0, history_slots=MIN_HISTORY_SLOTS)
    little = SiteCapacity("depot", rated_import_kw=None, history_p95_kw=20.0, history_slots=MIN_HISTORY_SLOTS - 1)
    assert implausible_limit(71.0, much) is not None  # 3 x 20 + 10 = 70
    assert implausible_limit(70.0, much) is None
    assert implausible_limit(71.0, little) is None


def test_ordinary_limits_and_garbage() -> None:
    capacity = SiteCapacity("depot", rated_import_kw=340.0, history_p95_kw=25.0, history_slots=500)
    assert implausible_limit(45.0, capacity) is None
    assert implausible_limit(0.0, capacity) is None
    assert implausible_limit(float("nan"), capacity) is not None
    assert implausible_limit(-1.0, capacity) is not None
