"""Reporting periods: a slot, a day, a month, a Japanese fiscal year or a free range of slots.

A :class:`Period` is a half-open interval ``[start, end)`` of aware datetimes whose bounds fall on
30-minute slot boundaries. :func:`parse_period` turns the ``kind`` and ``value`` strings of an API
query into one, raising :class:`PeriodError` (a ``ValueError``) whose message says which part is
wrong, so the API can answer 422 and name the field.

Calendar periods (day, month, fiscal year) are judged in the reporting time zone (JST unless told
otherwise). Durations are always computed on UTC instants, so a zone with daylight saving time
would still get its 23- and 25-hour days right.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Literal, get_args

from vpp.domain.slots import JST, SLOT, fiscal_year_of, require_aware, slot_start

__all__ = [
    "MAX_RANGE",
    "Period",
    "PeriodError",
    "PeriodKind",
    "current_slot",
    "elapsed_slots",
    "expected_slots",
    "fiscal_year_to_date",
    "parse_period",
    "today",
]

PeriodKind = Literal["slot", "day", "month", "fiscal_year", "range"]
_KINDS: tuple[str, ...] = get_args(PeriodKind)

MAX_RANGE = timedelta(days=400)
"""Longest accepted free range: a fiscal year plus slack, and a bound on the work one query may ask for."""

# Bounds keep date arithmetic clear of datetime's year-9999 overflow and catch typos like "20233".
_MIN_YEAR = 1900
_MAX_YEAR = 2999

_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_MONTH_RE = re.compile(r"(\d{4})-(\d{2})")
_YEAR_RE = re.compile(r"\d{4}")
# "2026-11-23T14:00 09:00": a "+" sent unencoded in a query string arrives as a space.
_LOST_PLUS_RE = re.compile(r" \d{2}:?\d{2}$")


class PeriodError(ValueError):
    """A period query that cannot be honoured; ``field`` is ``"kind"`` or ``"value"``."""

    def __init__(self, message: str, *, field: str = "value") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open reporting interval ``[start, end)``.

    Attributes
    ----------
    kind : {"slot", "day", "month", "fiscal_year", "range"}
    start, end : datetime
        Timezone-aware bounds, expressed in the reporting time zone.
    label : str
        Human-readable name, e.g. ``"2026-11-23"``, ``"2026-11"``, ``"FY2023"``.
    """

    kind: PeriodKind
    start: datetime
    end: datetime
    label: str

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"period kind must be one of {', '.join(_KINDS)}; got {self.kind!r}")
        require_aware(self.start, "period start")
        require_aware(self.end, "period end")
        if self.end <= self.start:
            raise ValueError(f"period end {self.end.isoformat()} must be after start {self.start.isoformat()}")

    @property
    def duration(self) -> timedelta:
        """Elapsed (UTC) time between start and end."""
        return _utc(self.end) - _utc(self.start)

    def contains(self, moment: datetime) -> bool:
        """True when the aware instant `moment` lies in ``[start, end)``."""
        require_aware(moment, "moment")
        return self.start <= moment < self.end


def parse_period(kind: str, value: str, *, tz: tzinfo = JST) -> Period:
    """Parse an API period query.

    Parameters
    ----------
    kind : str
        ``"slot"``, ``"day"``, ``"month"``, ``"fiscal_year"`` or ``"range"``.
    value : str
        ``slot``: a slot start with its UTC offset, ``"2026-11-23T14:00+09:00"``;
        ``day``: ``"2026-11-23"``; ``month``: ``"2026-11"``;
        ``fiscal_year``: ``"2023"`` (1 April 2023 to 1 April 2024);
        ``range``: ``"<start>/<end>"``, both slot-aligned with offsets, end after start,
        at most :data:`MAX_RANGE` long.
    tz : tzinfo
        Reporting time zone for calendar periods and labels (JST by default).

    Raises
    ------
    PeriodError
        With ``field="kind"`` for an unknown kind, else ``field="value"``; the message says
        what is wrong and what was expected.
    """
    value = value.strip()
    if kind == "slot":
        start = _parse_instant(value, "slot", tz)
        return _slot_period(start, tz)
    if kind == "day":
        return _day_period(_parse_day(value), tz)
    if kind == "month":
        return _month_period(*_parse_month(value), tz)
    if kind == "fiscal_year":
        return _fiscal_year_period(_parse_fiscal_year(value), tz)
    if kind == "range":
        return _parse_range(value, tz)
    raise PeriodError(f"period kind must be one of {', '.join(_KINDS)}; got {kind!r}", field="kind")


def expected_slots(period: Period) -> int:
    """Number of 30-minute slots overlapping the period (a FY2023 year: 366 days x 48 = 17,568)."""
    first = slot_start(period.start)
    return math.ceil((_utc(period.end) - first) / SLOT)


def elapsed_slots(period: Period, now: datetime) -> int:
    """Slots of `period` that have fully ended by `now` (0 before it starts, all after it ends).

    Use this rather than :func:`expected_slots` as the completeness denominator for periods still
    in progress ("today", fiscal year to date): a slot not yet over cannot be missing.
    """
    require_aware(now, "now")
    cutoff = min(max(_utc(now), _utc(period.start)), _utc(period.end))
    return int((cutoff - slot_start(period.start)) // SLOT)


def current_slot(now: datetime, *, tz: tzinfo = JST) -> Period:
    """The slot containing `now`."""
    return _slot_period(slot_start(now).astimezone(tz), tz)


def today(now: datetime, *, tz: tzinfo = JST) -> Period:
    """The whole reporting-zone calendar day containing `now`."""
    return _day_period(require_aware(now, "now").astimezone(tz).date(), tz)


def fiscal_year_to_date(now: datetime, *, tz: tzinfo = JST) -> Period:
    """From 1 April of the fiscal year containing `now` to the end of the slot containing `now`.

    The current, unfinished slot is included so the period always contains `now` and is never empty
    (at 00:00 on 1 April it is that one slot); see :func:`elapsed_slots` for completeness.
    """
    require_aware(now, "now")
    fiscal_year = fiscal_year_of(now.astimezone(tz).date())
    start = datetime(fiscal_year, 4, 1, tzinfo=tz)
    end = (slot_start(now) + SLOT).astimezone(tz)
    return Period("range", start, end, f"FY{fiscal_year} to {end.isoformat(timespec='minutes')}")


def _utc(moment: datetime) -> datetime:
    # Subtracting two datetimes sharing one tzinfo ignores their offsets; UTC makes it exact.
    return moment.astimezone(UTC)


def _check_aligned(moment: datetime, what: str) -> None:
    if slot_start(moment) != moment:
        raise PeriodError(f"{what} {moment.isoformat()} is not on a 30-minute slot boundary (:00 or :30)")


def _slot_period(start: datetime, tz: tzinfo) -> Period:
    start = start.astimezone(tz)
    return Period("slot", start, start + SLOT, start.isoformat(timespec="minutes"))


def _day_period(day: date, tz: tzinfo) -> Period:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    following = day + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=tz)
    _check_aligned(start, "day start")
    return Period("day", start, end, day.isoformat())


def _month_period(year: int, month: int, tz: tzinfo) -> Period:
    start = datetime(year, month, 1, tzinfo=tz)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
    _check_aligned(start, "month start")
    return Period("month", start, end, f"{year:04d}-{month:02d}")


def _fiscal_year_period(fiscal_year: int, tz: tzinfo) -> Period:
    start = datetime(fiscal_year, 4, 1, tzinfo=tz)
    end = datetime(fiscal_year + 1, 4, 1, tzinfo=tz)
    _check_aligned(start, "fiscal year start")
    return Period("fiscal_year", start, end, f"FY{fiscal_year}")


def _check_year(year: int, what: str) -> None:
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise PeriodError(f"{what} year {year} is outside {_MIN_YEAR}-{_MAX_YEAR}")


def _parse_day(value: str) -> date:
    if not _DAY_RE.fullmatch(value):
        raise PeriodError(f"day must look like 2026-11-23 (YYYY-MM-DD); got {value!r}")
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise PeriodError(f"day {value!r} is not a calendar date: {exc}") from None
    _check_year(day.year, "day")
    return day


def _parse_month(value: str) -> tuple[int, int]:
    match = _MONTH_RE.fullmatch(value)
    if match is None:
        raise PeriodError(f"month must look like 2026-11 (YYYY-MM); got {value!r}")
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12:
        raise PeriodError(f"month {value!r}: month number must be 01-12")
    _check_year(year, "month")
    return year, month


def _parse_fiscal_year(value: str) -> int:
    if not _YEAR_RE.fullmatch(value):
        raise PeriodError(
            f"fiscal_year must be a four-digit year like 2023 (FY2023 = April 2023 - March 2024); got {value!r}"
        )
    fiscal_year = int(value)
    _check_year(fiscal_year, "fiscal_year")
    return fiscal_year


def _parse_instant(text: str, what: str, tz: tzinfo) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        hint = " (a '+' in a URL query must be sent as %2B)" if _LOST_PLUS_RE.search(text) else ""
        raise PeriodError(
            f"{what} must be an ISO 8601 time with offset like 2026-11-23T14:00+09:00; got {text!r}{hint}"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise PeriodError(f"{what} {text!r} has no UTC offset; add one, e.g. +09:00")
    _check_year(moment.year, what)
    _check_aligned(moment, what)
    return moment.astimezone(tz)


def _parse_range(value: str, tz: tzinfo) -> Period:
    parts = value.split("/")
    if len(parts) != 2:
        raise PeriodError(
            f"range must be '<start>/<end>', e.g. 2026-11-01T00:00+09:00/2026-11-08T00:00+09:00; got {value!r}"
        )
    start = _parse_instant(parts[0], "range start", tz)
    end = _parse_instant(parts[1], "range end", tz)
    if end <= start:
        raise PeriodError(f"range end {end.isoformat()} must be after its start {start.isoformat()}")
    if _utc(end) - _utc(start) > MAX_RANGE:
        raise PeriodError(f"range is longer than the maximum of {MAX_RANGE.days} days")
    label = f"{start.isoformat(timespec='minutes')}/{end.isoformat(timespec='minutes')}"
    return Period("range", start, end, label)
