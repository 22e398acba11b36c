from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from vpp.domain.periods import (
    Period,
    PeriodError,
    current_slot,
    elapsed_slots,
    expected_slots,
    fiscal_year_to_date,
    parse_period,
    today,
)
from vpp.domain.slots import JST


def jst(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=JST)


def test_slot_period() -> None:
    period = parse_period("slot", "2026-11-23T14:00+09:00")
    assert period == Period("slot", jst(2026, 11, 23, 14), jst(2026, 11, 23, 14, 30), "2026-11-23T14:00+09:00")
    assert expected_slots(period) == 1


def test_slot_given_in_utc_is_reported_in_jst() -> None:
    period = parse_period("slot", "2026-11-23T05:30Z")
    assert period.start == jst(2026, 11, 23, 14, 30)
    assert period.label == "2026-11-23T14:30+09:00"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-23T14:10+09:00", "slot boundary"),
        ("2026-11-23T14:00:01+09:00", "slot boundary"),
        ("2026-11-23T14:00", "no UTC offset"),
        ("yesterday", "ISO 8601"),
        ("2026-11-23T14:00 09:00", "%2B"),
    ],
)
def test_bad_slot_values_say_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message) as caught:
        parse_period("slot", value)
    assert caught.value.field == "value"


def test_day_period_is_a_jst_day_of_48_slots() -> None:
    period = parse_period("day", "2026-11-23")
    assert (period.kind, period.start, period.end, period.label) == (
        "day",
        jst(2026, 11, 23),
        jst(2026, 11, 24),
        "2026-11-23",
    )
    assert period.start.astimezone(UTC) == datetime(2026, 11, 22, 15, tzinfo=UTC)
    assert expected_slots(period) == 48


def test_day_in_another_reporting_zone() -> None:
    period = parse_period("day", "2026-11-23", tz=UTC)
    assert period.start == datetime(2026, 11, 23, tzinfo=UTC)


@pytest.mark.parametrize(("value", "message"), [("2026-02-30", "not a calendar date"), ("2026-1-5", "YYYY-MM-DD")])
def test_bad_days(value: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        parse_period("day", value)


def test_month_periods_including_december() -> None:
    november = parse_period("month", "2026-11")
    assert (november.start, november.end, november.label) == (jst(2026, 11, 1), jst(2026, 12, 1), "2026-11")
    assert expected_slots(november) == 30 * 48
    december = parse_period("month", "2026-12")
    assert december.end == jst(2027, 1, 1)


@pytest.mark.parametrize("value", ["2026-13", "2026-00", "2026-1", "202611"])
def test_bad_months(value: str) -> None:
    with pytest.raises(PeriodError, match="month"):
        parse_period("month", value)


def test_fiscal_year_runs_april_to_april_jst() -> None:
    fy2023 = parse_period("fiscal_year", "2023")
    assert (fy2023.start, fy2023.end, fy2023.label) == (jst(2023, 4, 1), jst(2024, 4, 1), "FY2023")
    assert expected_slots(fy2023) == 366 * 48  # includes 29 February 2024
    assert expected_slots(parse_period("fiscal_year", "2022")) == 365 * 48


@pytest.mark.parametrize("value", ["FY2023", "23", "20233", "1800"])
def test_bad_fiscal_years(value: str) -> None:
    with pytest.raises(PeriodError, match="fiscal_year"):
        parse_period("fiscal_year", value)


def test_range_period() -> None:
    period = parse_period("range", "2026-11-01T00:00+09:00/2026-11-08T00:00+09:00")
    assert (period.start, period.end) == (jst(2026, 11, 1), jst(2026, 11, 8))
    assert period.label == "2026-11-01T00:00+09:00/2026-11-08T00:00+09:00"
    assert expected_slots(period) == 7 * 48


def test_range_of_exactly_400_days_is_accepted() -> None:
    period = parse_period("range", "2026-01-01T00:00+09:00/2027-02-05T00:00+09:00")
    assert period.duration == timedelta(days=400)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-08T00:00+09:00/2026-11-01T00:00+09:00", "after its start"),
        ("2026-11-01T00:00+09:00/2026-11-01T00:00+09:00", "after its start"),
        ("2026-11-01T00:00+09:00/2026-11-01T00:15+09:00", "range end .* slot boundary"),
        ("2026-11-01T00:00/2026-11-02T00:00+09:00", "range start .* no UTC offset"),
        ("2026-01-01T00:00+09:00/2027-02-05T00:30+09:00", "400 days"),
        ("2026-11-01T00:00+09:00", "'<start>/<end>'"),
        ("a/b/c", "'<start>/<end>'"),
    ],
)
def test_bad_ranges(value: str, message: str) -> None:
    with pytest.raises(PeriodError, match=message):
        parse_period("range", value)


def test_unknown_kind_names_the_kind_field() -> None:
    with pytest.raises(PeriodError, match="kind must be one of") as caught:
        parse_period("week", "2026-W47")
    assert caught.value.field == "kind"
    assert isinstance(caught.value, ValueError)


def test_period_rejects_naive_and_empty_intervals() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Period("day", datetime(2026, 1, 1), jst(2026, 1, 2), "x")  # noqa: DTZ001
    with pytest.raises(ValueError, match="after start"):
        Period("day", jst(2026, 1, 2), jst(2026, 1, 2), "x")


def test_current_slot_and_today() -> None:
    now = jst(2026, 11, 23, 14, 17, 5)
    assert current_slot(now) == parse_period("slot", "2026-11-23T14:00+09:00")
    # 16:00 UTC on 23 November is 01:00 JST on the 24th.
    assert today(datetime(2026, 11, 23, 16, tzinfo=UTC)) == parse_period("day", "2026-11-24")
    with pytest.raises(ValueError, match="timezone-aware"):
        today(datetime(2026, 11, 23))  # noqa: DTZ001


def test_fiscal_year_to_date() -> None:
    period = fiscal_year_to_date(jst(2027, 3, 31, 23, 59))
    assert (period.start, period.end) == (jst(2026, 4, 1), jst(2027, 4, 1))
    assert period.label.startswith("FY2026")
    first_moment = fiscal_year_to_date(jst(2026, 4, 1))
    assert (first_moment.start, first_moment.end) == (jst(2026, 4, 1), jst(2026, 4, 1, 0, 30))


def test_elapsed_slots_counts_only_finished_slots() -> None:
    day = parse_period("day", "2026-11-23")
    assert elapsed_slots(day, jst(2026, 11, 23, 1, 15)) == 2
    assert elapsed_slots(day, jst(2026, 11, 22, 12)) == 0
    assert elapsed_slots(day, jst(2026, 12, 1)) == 48
    assert elapsed_slots(day, jst(2026, 11, 24)) == 48


def test_period_contains() -> None:
    day = parse_period("day", "2026-11-23")
    assert day.contains(datetime(2026, 11, 22, 15, tzinfo=UTC))
    assert not day.contains(jst(2026, 11, 24))
    assert day.start.date() == date(2026, 11, 23)
