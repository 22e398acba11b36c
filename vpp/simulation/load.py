"""The depot's non-EV load shape: a working-day and an off-day profile in JST, mean 1 over a week."""

from __future__ import annotations

import functools
from collections.abc import Container
from datetime import date, timedelta

__all__ = ["is_off_day", "load_factor"]

# Relative load at each JST hour's start, interpolated linearly between them. Working days: sorting,
# offices and air conditioning from 06:00 to 20:00; nights and off days: lighting, refrigeration, IT.
_WORKDAY = (
    0.55, 0.55, 0.55, 0.55, 0.55, 0.7, 1.1, 1.35, 1.45, 1.45, 1.45, 1.45,
    1.35, 1.45, 1.45, 1.45, 1.45, 1.4, 1.3, 1.15, 0.85, 0.65, 0.6, 0.55,
)  # fmt: skip
_OFFDAY = (
    0.5, 0.5, 0.5, 0.5, 0.5, 0.55, 0.65, 0.75, 0.8, 0.8, 0.8, 0.8,
    0.8, 0.8, 0.8, 0.8, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5, 0.5,
)  # fmt: skip
# Linear interpolation between hour starts keeps each profile's plain mean, so a week (5 + 2) is:
_WEEK_MEAN = (5 * sum(_WORKDAY) + 2 * sum(_OFFDAY)) / (7 * 24)
_WORKDAY_NORM = tuple(value / _WEEK_MEAN for value in (*_WORKDAY, _WORKDAY[0]))
_OFFDAY_NORM = tuple(value / _WEEK_MEAN for value in (*_OFFDAY, _OFFDAY[0]))

_EPOCH_DAY = date(1970, 1, 1)


def load_factor(hour_jst: float, off_day: bool) -> float:
    """Load relative to the weekly mean at `hour_jst` (0 <= hour < 24) of a working or off day."""
    table = _OFFDAY_NORM if off_day else _WORKDAY_NORM
    hour = int(hour_jst)
    fraction = hour_jst - hour
    return table[hour] + fraction * (table[hour + 1] - table[hour])


@functools.lru_cache(maxsize=4096)
def is_off_day(day_jst: int) -> bool:
    """Whether JST day number `day_jst` (days since 1970-01-01) is a weekend or a Japanese public holiday."""
    day = _EPOCH_DAY + timedelta(days=day_jst)
    return day.weekday() >= 5 or day in _japan_holidays()


@functools.cache
def _japan_holidays() -> Container[date]:
    # Imported on first use: the calendar costs ~60 ms to build and most callers never need it.
    import holidays

    calendar: Container[date] = holidays.country_holidays("JP")
    return calendar
