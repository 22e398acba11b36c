"""The METI standard baseline, one hand-computed case per rule.

Days are built as a flat "outside" value with a different value over the DR window, so every
expected baseline below is a short average written out in the test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta

import pytest

from vpp.domain.baseline import (
    BaselineSettings,
    InsufficientHistory,
    japanese_holiday_checker,
    reductions_kwh,
    standard_baseline,
)

IS_HOLIDAY = japanese_holiday_checker()
EVENT_SLOTS = (26, 30)  # 13:00-15:00 JST
# A Wednesday; no Japanese public holiday between 15 June and 15 July 2026.
WEDNESDAY = date(2026, 7, 15)


def d(month: int, day: int) -> date:
    return date(2026, month, day)


def profile(window_kwh: float, outside_kwh: float = 10.0, window: tuple[int, int] = EVENT_SLOTS) -> list[float]:
    values = [outside_kwh] * 48
    values[window[0] : window[1]] = [window_kwh] * (window[1] - window[0])
    return values


def history_before(
    event_day: date,
    overrides: dict[date, list[float]],
    default: list[float] | None = None,
    days: int = 35,
) -> dict[date, Sequence[float | None]]:
    """Every day before the event gets `default` (window 50, outside 10) unless overridden."""
    base = default if default is not None else profile(50.0)
    out: dict[date, Sequence[float | None]] = {
        event_day - timedelta(days=back): list(base) for back in range(1, days + 1)
    }
    out.update(overrides)
    return out


def test_pool_is_five_most_recent_weekdays_and_keeps_the_four_highest() -> None:
    # Pool: Jul 14, 13, 10, 9, 8 (11-12 is a weekend). Jul 14 has the lowest window use (20) and is
    # dropped although its other slots are high. Older weekdays (window 50) are outside the pool.
    history = history_before(
        WEDNESDAY,
        {
            d(7, 14): profile(20, outside_kwh=100),
            d(7, 13): profile(30, outside_kwh=8),
            d(7, 10): profile(40, outside_kwh=12),
            d(7, 9): profile(50, outside_kwh=10),
            d(7, 8): profile(60, outside_kwh=14),
        },
    )
    result = standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY)

    assert result.method == "high4of5"
    assert result.chosen_days == (d(7, 13), d(7, 10), d(7, 9), d(7, 8))
    assert result.excluded[d(7, 14)] == "not_in_top"
    assert result.excluded[d(7, 12)] == "other_day_type"
    assert result.excluded[d(7, 11)] == "other_day_type"
    assert result.excluded[d(7, 7)] == "older_than_pool"
    assert result.excluded[d(6, 15)] == "older_than_pool"
    assert d(6, 14) not in result.excluded  # 31 days back: outside the lookback
    assert len(result.chosen_days) + len(result.excluded) == 30
    window_kwh = (30 + 40 + 50 + 60) / 4  # 45
    outside_kwh = (8 + 12 + 10 + 14) / 4  # 11
    assert result.slots_kwh == pytest.approx(profile(window_kwh, outside_kwh))
    assert result.adjusted_kwh == result.slots_kwh
    assert result.adjustment_kwh == 0.0
    assert not result.adjustment_applied


def test_earlier_dr_day_is_skipped_and_the_pool_reaches_further_back() -> None:
    history = history_before(
        WEDNESDAY,
        {
            d(7, 14): profile(20),
            d(7, 13): profile(90),  # the highest, but a DR day
            d(7, 10): profile(40),
            d(7, 9): profile(50),
            d(7, 8): profile(60),
            d(7, 7): profile(50),
        },
    )
    result = standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY, dr_days={d(7, 13)})

    assert result.excluded[d(7, 13)] == "dr_day"
    assert result.chosen_days == (d(7, 10), d(7, 9), d(7, 8), d(7, 7))
    assert result.excluded[d(7, 14)] == "not_in_top"
    assert result.slots_kwh[26:30] == pytest.approx([(40 + 50 + 60 + 50) / 4] * 4)  # 50


@pytest.mark.parametrize(
    ("jul14_window_kwh", "jul14_reason", "jul7_reason"),
    [
        # Candidates Jul 7, 8, 9, 10, 13 (36, 40, 44, 48, 52 → sum 220) and Jul 14 (x).
        # Floor = 0.25 × (220 + x) / 6.  x = 9.5 → floor 9.5625: just under → low use.
        (9.5, "low_use", "not_in_top"),
        # x = 9.625 → floor 229.625 / 24 = 9.5677: just over → eligible, then lowest of the pool.
        (9.625, "not_in_top", "older_than_pool"),
    ],
)
def test_low_use_day_just_under_and_just_over_a_quarter(
    jul14_window_kwh: float, jul14_reason: str, jul7_reason: str
) -> None:
    history = history_before(
        WEDNESDAY,
        {
            d(7, 14): profile(jul14_window_kwh),
            d(7, 13): profile(52),
            d(7, 10): profile(48),
            d(7, 9): profile(44),
            d(7, 8): profile(40),
            d(7, 7): profile(36),
        },
    )
    settings = BaselineSettings(lookback_days=8)  # Jul 7 - Jul 14
    result = standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY, settings=settings)

    assert result.excluded[d(7, 14)] == jul14_reason
    assert result.excluded[d(7, 7)] == jul7_reason
    assert result.chosen_days == (d(7, 13), d(7, 10), d(7, 9), d(7, 8))
    assert result.slots_kwh[26] == pytest.approx((52 + 48 + 44 + 40) / 4)  # 46


def test_tie_for_last_place_drops_the_day_farthest_from_the_event() -> None:
    # Jul 13 and Jul 9 both use 40 in the window; Jul 9 is farther and goes.
    history = history_before(
        WEDNESDAY,
        {
            d(7, 14): profile(50, outside_kwh=1),
            d(7, 13): profile(40, outside_kwh=2),
            d(7, 10): profile(60, outside_kwh=3),
            d(7, 9): profile(40, outside_kwh=4),
            d(7, 8): profile(70, outside_kwh=5),
        },
    )
    result = standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY)

    assert result.chosen_days == (d(7, 14), d(7, 13), d(7, 10), d(7, 8))
    assert result.excluded[d(7, 9)] == "not_in_top"
    assert result.slots_kwh == pytest.approx(profile((50 + 40 + 60 + 70) / 4, (1 + 2 + 3 + 5) / 4))


def test_public_holiday_event_uses_high_two_of_three_over_holidays_and_weekends() -> None:
    # 2026-11-23, Labour Thanksgiving Day, a Monday. Pool: Sun Nov 22, Sat Nov 21, Sun Nov 15.
    event_day = d(11, 23)
    weekday = profile(100, outside_kwh=100)
    history = {
        day: (list(weekday) if not IS_HOLIDAY(day) else profile(30))
        for day in (event_day - timedelta(days=back) for back in range(1, 31))
    }
    history[d(11, 22)] = profile(30, outside_kwh=6)
    history[d(11, 21)] = profile(20, outside_kwh=4)
    history[d(11, 15)] = profile(25, outside_kwh=8)

    result = standard_baseline(history, event_day, EVENT_SLOTS, is_holiday=IS_HOLIDAY)

    assert result.method == "high2of3"
    assert result.chosen_days == (d(11, 22), d(11, 15))
    assert result.excluded[d(11, 21)] == "not_in_top"
    assert result.excluded[d(11, 20)] == "other_day_type"  # a Friday
    assert result.excluded[d(11, 14)] == "older_than_pool"
    assert result.slots_kwh == pytest.approx(profile((30 + 25) / 2, (6 + 8) / 2))


def test_weekday_public_holiday_is_a_holiday_candidate() -> None:
    # Event on Sunday 2026-11-08: Sat Nov 7, Tue Nov 3 (Culture Day) and Sun Nov 1 form the pool.
    event_day = d(11, 8)
    history = history_before(event_day, {d(11, 7): profile(30), d(11, 3): profile(40), d(11, 1): profile(20)}, days=30)
    result = standard_baseline(history, event_day, EVENT_SLOTS, is_holiday=IS_HOLIDAY)

    assert result.chosen_days == (d(11, 7), d(11, 3))
    assert result.excluded[d(11, 1)] == "not_in_top"
    assert result.excluded[d(11, 2)] == "other_day_type"  # the Monday in between
    assert result.slots_kwh[26] == pytest.approx((30 + 40) / 2)


def test_weekday_event_skips_a_holiday_monday() -> None:
    # Tuesday 2026-07-21; Monday Jul 20 is Marine Day and must not enter the weekday pool.
    event_day = d(7, 21)
    history = history_before(
        event_day,
        {
            d(7, 20): profile(500),
            d(7, 17): profile(40),
            d(7, 16): profile(40),
            d(7, 15): profile(40),
            d(7, 14): profile(40),
            d(7, 13): profile(20),
        },
    )
    result = standard_baseline(history, event_day, EVENT_SLOTS, is_holiday=IS_HOLIDAY)

    assert result.excluded[d(7, 20)] == "other_day_type"
    assert result.chosen_days == (d(7, 17), d(7, 16), d(7, 15), d(7, 14))
    assert result.slots_kwh[26:30] == pytest.approx([40.0] * 4)


def test_days_with_missing_data_are_skipped() -> None:
    with_gap: list[float | None] = list(profile(1000))
    with_gap[0] = None
    with_nan = profile(1000)
    with_nan[40] = math.nan
    history = history_before(
        WEDNESDAY,
        {
            d(7, 14): profile(44),
            d(7, 9): profile(1000)[:47],  # short day
            d(7, 8): profile(48),
            d(7, 7): profile(36),
            d(7, 6): profile(40),
            d(7, 3): profile(52),
        },
    )
    history[d(7, 13)] = with_gap
    history[d(7, 2)] = with_nan
    del history[d(7, 10)]  # absent

    result = standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY)

    for day in (d(7, 13), d(7, 10), d(7, 9)):
        assert result.excluded[day] == "missing_data"
    assert result.excluded[d(7, 2)] == "missing_data"  # also outside the pool, still reported
    assert result.chosen_days == (d(7, 14), d(7, 8), d(7, 6), d(7, 3))
    assert result.excluded[d(7, 7)] == "not_in_top"
    assert result.slots_kwh[26] == pytest.approx((44 + 48 + 40 + 52) / 4)  # 46


def flat_weekday_history() -> dict[date, Sequence[float | None]]:
    """All days: 10 kWh outside the event window, 40 kWh inside."""
    return history_before(WEDNESDAY, {}, default=profile(40))


@pytest.mark.parametrize(
    ("window_actual_kwh", "cap_ratio", "expected_adjustment_kwh"),
    [
        # Baseline over slots 18-23 (09:00-12:00) is 10 kWh; mean difference (2+2+3+3+4+4)/6 = +3.
        ([12, 12, 13, 13, 14, 14], None, 3.0),
        ([8, 8, 7, 7, 6, 6], None, -3.0),
        # Cap 5% of the event-window baseline mean (40 kWh) = 2 kWh.
        ([12, 12, 13, 13, 14, 14], 0.05, 2.0),
        ([8, 8, 7, 7, 6, 6], 0.05, -2.0),
    ],
)
def test_same_day_adjustment(
    window_actual_kwh: list[float], cap_ratio: float | None, expected_adjustment_kwh: float
) -> None:
    actual: list[float | None] = [None] * 48
    actual[:18] = [10.0] * 18
    actual[18:24] = window_actual_kwh
    settings = BaselineSettings(adjust_cap_ratio=cap_ratio)

    result = standard_baseline(
        flat_weekday_history(),
        WEDNESDAY,
        EVENT_SLOTS,
        is_holiday=IS_HOLIDAY,
        event_day_actual=actual,
        settings=settings,
    )

    assert result.adjustment_applied
    assert result.adjustment_window == (18, 24)
    assert result.adjustment_kwh == pytest.approx(expected_adjustment_kwh)
    expected = profile(40 + expected_adjustment_kwh)
    assert result.adjusted_kwh == pytest.approx(expected)  # event slots only; 18-23 stay at 10
    assert result.slots_kwh == pytest.approx(profile(40))
    assert (len(result.notes) == 1) == (cap_ratio is not None)


def test_adjustment_not_applied_while_its_window_is_not_fully_metered() -> None:
    actual: list[float | None] = [12.0] * 20 + [None] * 28
    result = standard_baseline(
        flat_weekday_history(), WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY, event_day_actual=actual
    )
    assert not result.adjustment_applied
    assert result.adjustment_kwh == 0.0
    assert result.adjusted_kwh == result.slots_kwh
    assert "not applied" in result.notes[0]


def test_adjustment_window_crossing_midnight_uses_the_previous_days() -> None:
    # Event 02:00-03:00 (slots 4-5): window 22:00 the day before (slots 44-47) to 01:00 (slots 0-1).
    # Every day: 10 kWh, but 11 kWh in 22:00-24:00. The event's eve (Jul 14) used 14 there.
    # Chosen days are Jul 14, 13, 10, 9 (all tie; farthest Jul 8 drops); their eves' late slots = 11.
    late = profile(10, window=(4, 6))
    late[44:48] = [11.0] * 4
    history = history_before(WEDNESDAY, {}, default=late)
    history[d(7, 14)] = list(late[:44]) + [14.0] * 4
    actual: list[float | None] = [16.0, 16.0] + [None] * 46  # +6 over the baseline of 10

    result = standard_baseline(history, WEDNESDAY, (4, 6), is_holiday=IS_HOLIDAY, event_day_actual=actual)

    assert result.chosen_days == (d(7, 14), d(7, 13), d(7, 10), d(7, 9))
    assert result.adjustment_window == (-4, 2)
    assert result.adjustment_kwh == pytest.approx((4 * 3 + 2 * 6) / 6)  # 4
    assert result.adjusted_kwh[4:6] == pytest.approx([14.0, 14.0])

    # Without Sunday Jul 12 (the eve of chosen Jul 13) the window shrinks to the event day's part.
    del history[d(7, 12)]
    shrunk = standard_baseline(history, WEDNESDAY, (4, 6), is_holiday=IS_HOLIDAY, event_day_actual=actual)
    assert shrunk.adjustment_window == (0, 2)
    assert shrunk.adjustment_kwh == pytest.approx(6.0)
    assert any("shrunk" in note for note in shrunk.notes)


def test_reductions_are_adjusted_baseline_minus_actual() -> None:
    actual: list[float | None] = [10.0] * 18 + [13.0] * 6 + [10.0, 10.0, 41.0, 40.0, 39.0, None] + [None] * 18
    result = standard_baseline(
        flat_weekday_history(), WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY, event_day_actual=actual
    )
    reductions = reductions_kwh(result, actual, EVENT_SLOTS)  # adjusted baseline 40 + 3 = 43
    assert reductions[:3] == pytest.approx((2.0, 3.0, 4.0))
    assert math.isnan(reductions[3])


def test_insufficient_history_raises_with_the_counts() -> None:
    history = {day: profile(40) for day in (d(7, 14), d(7, 13), d(7, 10))}
    with pytest.raises(InsufficientHistory, match=r"needs 4 eligible weekday days .* found 3"):
        standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY)
    assert issubclass(InsufficientHistory, ValueError)


def test_degraded_mode_averages_what_exists_and_says_so() -> None:
    history = {d(7, 14): profile(30), d(7, 13): profile(40), d(7, 10): profile(50)}
    settings = BaselineSettings(allow_degraded=True)
    result = standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY, settings=settings)
    assert result.method == "degraded"
    assert result.slots_kwh[26] == pytest.approx(40.0)
    assert "not for settlement" in result.notes[0]

    with pytest.raises(InsufficientHistory):
        standard_baseline({}, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY, settings=settings)


def test_exactly_keep_eligible_days_pool_them_all() -> None:
    history = {day: profile(40) for day in (d(7, 14), d(7, 13), d(7, 10), d(7, 9))}
    result = standard_baseline(history, WEDNESDAY, EVENT_SLOTS, is_holiday=IS_HOLIDAY)
    assert result.method == "high4of4"


def test_japanese_holiday_checker() -> None:
    assert IS_HOLIDAY(d(11, 23))  # Labour Thanksgiving Day (Monday)
    assert IS_HOLIDAY(d(11, 21))  # Saturday
    assert not IS_HOLIDAY(d(11, 24))
    assert not IS_HOLIDAY(d(12, 29))
    assert japanese_holiday_checker(extra_holidays={d(12, 29)})(d(12, 29))


@pytest.mark.parametrize("event_slots", [(30, 26), (-1, 4), (40, 49), (5, 5)])
def test_bad_event_slots_are_rejected(event_slots: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="event slots"):
        standard_baseline(flat_weekday_history(), WEDNESDAY, event_slots, is_holiday=IS_HOLIDAY)


def test_settings_reject_keep_above_pool() -> None:
    with pytest.raises(ValueError, match="keep"):
        BaselineSettings(weekday_pool=3, weekday_keep=4)
