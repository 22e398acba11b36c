"""The Japanese calendar as electricity use sees it: weekdays versus weekends and public holidays.

Public holidays (祝日), substitute holidays (振替休日) and "national holidays" sandwiched between two
holidays (国民の休日) come from the ``holidays`` package (country ``JP``), which encodes the
Act on National Holidays. Company closures such as 2-3 January or Obon are not public holidays and are
not counted here; the DR baseline guideline also counts only public holidays.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Literal

import holidays
from holidays.countries.japan import Japan

__all__ = [
    "KNOWN_YEARS",
    "DayType",
    "day_type",
    "is_japanese_holiday",
    "is_weekend_or_holiday",
    "japanese_holidays",
]

DayType = Literal["weekday", "holiday"]

# The package's Japanese rules cover these years; outside them it silently returns no holidays,
# which would misclassify every holiday as a weekday, so such years are refused instead.
_FIRST_YEAR: int = Japan.start_year
_LAST_YEAR: int = Japan.end_year
KNOWN_YEARS: tuple[int, int] = (_FIRST_YEAR, _LAST_YEAR)  # first and last year the holiday rules cover


@lru_cache(maxsize=256)
def japanese_holidays(year: int) -> frozenset[date]:
    """Japanese public holidays of one calendar year.

    Cached per year as a frozenset: the ``holidays`` objects are mutable dicts that grow when queried
    for new years, so sharing one between threads or callers is avoided.

    Raises
    ------
    ValueError
        For years the holiday rules do not cover.
    """
    if not _FIRST_YEAR <= year <= _LAST_YEAR:
        raise ValueError(f"Japanese holidays are known for {_FIRST_YEAR}-{_LAST_YEAR}, not {year}")
    return frozenset(holidays.country_holidays("JP", years=year))


def _as_date(day: date) -> date:
    # A datetime is a date subclass: comparing it against holiday dates would silently never match.
    if isinstance(day, datetime):
        raise TypeError("pass a calendar date (use moment.astimezone(JST).date()), not a datetime")
    return day


def is_japanese_holiday(day: date) -> bool:
    """True on a Japanese public holiday (including substitute and sandwiched national holidays)."""
    day = _as_date(day)
    return day in japanese_holidays(day.year)


def is_weekend_or_holiday(day: date) -> bool:
    """True on Saturday, Sunday or a Japanese public holiday."""
    day = _as_date(day)
    return day.weekday() >= 5 or is_japanese_holiday(day)


def day_type(day: date) -> DayType:
    """``"holiday"`` for weekends and public holidays, else ``"weekday"`` (the DR baseline's split)."""
    return "holiday" if is_weekend_or_holiday(day) else "weekday"
