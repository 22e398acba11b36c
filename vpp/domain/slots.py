"""30-minute settlement slots (コマ) and the Japanese fiscal year.

Japanese electricity is settled per 30-minute slot: 48 slots a day, slot 1 = 00:00-00:30 JST.
Japan has no daylight saving time and JST is a whole-hour offset (UTC+9), so JST half hours
coincide with UTC half hours: a slot boundary can be computed on the UTC instant directly.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "JST",
    "SLOT",
    "SLOTS_PER_DAY",
    "fiscal_year_of",
    "fiscal_year_range",
    "require_aware",
    "slot_number",
    "slot_start",
    "slots_between",
]

JST = ZoneInfo("Asia/Tokyo")
SLOT = timedelta(minutes=30)
SLOTS_PER_DAY = 48
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def require_aware(moment: datetime, name: str = "datetime") -> datetime:
    """Reject naive datetimes: a reading without an offset cannot be placed in a slot."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment


def slot_start(moment: datetime) -> datetime:
    """Start (UTC) of the 30-minute slot containing `moment`."""
    require_aware(moment)
    offset = (moment - _EPOCH) // SLOT
    return _EPOCH + offset * SLOT


def slot_number(moment: datetime) -> int:
    """Slot number 1..48 within the JST day (1 = 00:00-00:30 JST)."""
    local = slot_start(moment).astimezone(JST)
    return local.hour * 2 + local.minute // 30 + 1


def slots_between(start: datetime, end: datetime) -> list[datetime]:
    """Slot starts covering [start, end): the first is the slot containing `start`."""
    first = slot_start(start)
    require_aware(end, "end")
    out: list[datetime] = []
    cursor = first
    while cursor < end:
        out.append(cursor)
        cursor += SLOT
    return out


def fiscal_year_of(moment: datetime | date) -> int:
    """Japanese fiscal year (1 April - 31 March) containing `moment`, judged in JST."""
    day = require_aware(moment).astimezone(JST).date() if isinstance(moment, datetime) else moment
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_range(fiscal_year: int) -> tuple[datetime, datetime]:
    """[start, end) of a fiscal year as aware datetimes in JST."""
    start = datetime(fiscal_year, 4, 1, tzinfo=JST)
    end = datetime(fiscal_year + 1, 4, 1, tzinfo=JST)
    return start, end
