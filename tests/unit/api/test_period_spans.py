from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from vpp.domain.periods import parse_period
from vpp.domain.slots import JST, SLOT
from vpp.postgres.reports import period_spans


def _slots_of(kind: str, value: str) -> tuple[set[datetime], set[datetime]]:
    """(slots of the period, slots covered by its spans), as sets of slot starts."""
    period = parse_period(kind, value)
    wanted = set()
    cursor = period.start
    while cursor < period.end:
        wanted.add(cursor)
        cursor += SLOT
    spans = period_spans(period)
    covered: list[datetime] = []

    def days(lo: date, hi: date) -> None:
        day = lo
        while day < hi:
            start = datetime(day.year, day.month, day.day, tzinfo=JST)
            covered.extend(start + i * SLOT for i in range(48))
            day += timedelta(days=1)

    month = spans.months[0]
    while month < spans.months[1]:
        following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        days(month, following)
        month = following
    for lo, hi in spans.days:
        days(lo, hi)
    for lo, hi in spans.slots:
        cursor = lo
        while cursor < hi:
            covered.append(cursor)
            cursor += SLOT
    assert len(covered) == len(set(covered)), "spans overlap"
    return wanted, set(covered)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("fiscal_year", "2023"),
        ("month", "2024-02"),
        ("day", "2026-11-23"),
        ("slot", "2026-11-23T14:00+09:00"),
        ("range", "2026-01-30T13:30+09:00/2026-04-02T01:00+09:00"),
        ("range", "2026-01-30T13:30+09:00/2026-01-30T18:00+09:00"),
        ("range", "2026-01-30T23:00+09:00/2026-01-31T01:00+09:00"),
        ("range", "2026-03-01T00:00+09:00/2026-03-03T00:00+09:00"),
        ("range", "2026-03-01T00:00Z/2026-05-01T00:00Z"),
    ],
)
def test_spans_cover_the_period_exactly_once(kind: str, value: str) -> None:
    wanted, covered = _slots_of(kind, value)
    assert covered == wanted


def test_fiscal_year_reads_twelve_months_and_nothing_else() -> None:
    spans = period_spans(parse_period("fiscal_year", "2023"))
    assert spans.months == (date(2023, 4, 1), date(2024, 4, 1))
    assert all(lo == hi for lo, hi in spans.days)
    assert all(lo == hi for lo, hi in spans.slots)
