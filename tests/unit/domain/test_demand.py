from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vpp.domain.demand import (
    demand_alarm,
    demand_kw,
    monthly_max_demand,
    predict_end_of_slot_demand_kw,
    ratchet_contract_demand,
)
from vpp.domain.slots import JST


def jst(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=JST)


def test_demand_is_slot_energy_times_two() -> None:
    assert demand_kw(12.5) == 25.0


def test_monthly_max_demand_uses_jst_months() -> None:
    last_april_slot = jst(2026, 4, 30, 23, 30)  # 14:30 UTC on 30 April
    first_may_slot = jst(2026, 5, 1, 0, 0)  # 15:00 UTC on 30 April: May in JST
    result = monthly_max_demand(
        {
            jst(2026, 4, 10, 14): 25.0,
            last_april_slot: 30.0,
            first_may_slot.astimezone(UTC): 20.0,
            jst(2026, 5, 20, 10): 20.0,  # ties with 1 May: the earlier slot is reported
            jst(2026, 5, 21, 10): 10.0,
        }
    )
    assert result == {(2026, 4): (60.0, last_april_slot), (2026, 5): (40.0, first_may_slot)}
    assert result[(2026, 5)][1].astimezone(JST) == first_may_slot


def test_monthly_max_demand_across_a_year_boundary() -> None:
    result = monthly_max_demand({jst(2026, 12, 31, 23, 30): 5.0, jst(2027, 1, 1, 0, 0): 6.0})
    assert result == {(2026, 12): (10.0, jst(2026, 12, 31, 23, 30)), (2027, 1): (12.0, jst(2027, 1, 1))}


def test_monthly_max_demand_rejects_bad_input() -> None:
    assert monthly_max_demand({}) == {}
    with pytest.raises(ValueError, match="not a slot start"):
        monthly_max_demand({jst(2026, 4, 1, 0, 10): 1.0})
    with pytest.raises(ValueError, match="timezone-aware"):
        monthly_max_demand({datetime(2026, 4, 1): 1.0})  # noqa: DTZ001
    with pytest.raises(ValueError, match="non-negative"):
        monthly_max_demand({jst(2026, 4, 1): -1.0})


def test_ratchet_takes_the_highest_of_twelve_months() -> None:
    monthly = {(2025, 6): 80.0, (2025, 8): 120.0, (2026, 3): 90.0, (2026, 5): 70.0}
    assert ratchet_contract_demand(monthly, (2026, 5)) == 120.0  # June 2025 .. May 2026
    assert ratchet_contract_demand(monthly, (2026, 7)) == 120.0  # August 2025 still in the window
    assert ratchet_contract_demand(monthly, (2026, 8)) == 90.0  # August 2025 has dropped out
    assert ratchet_contract_demand(monthly, (2025, 7)) == 80.0  # months without data are skipped
    with pytest.raises(ValueError, match="no monthly maximum"):
        ratchet_contract_demand(monthly, (2025, 5))
    with pytest.raises(ValueError, match="month number"):
        ratchet_contract_demand(monthly, (2026, 13))


def test_prediction_at_the_very_start_of_a_slot() -> None:
    # (0 kWh + 50 kW x 0.5 h) x 2 = 50 kW
    assert predict_end_of_slot_demand_kw(jst(2026, 8, 3, 14), jst(2026, 8, 3, 14), 0.0, 50.0) == 50.0


def test_prediction_at_the_very_end_of_a_slot_is_the_measured_demand() -> None:
    # (20 kWh + 100 kW x 0 h) x 2 = 40 kW
    assert predict_end_of_slot_demand_kw(jst(2026, 8, 3, 14), jst(2026, 8, 3, 14, 30), 20.0, 100.0) == 40.0


def test_prediction_mid_slot() -> None:
    # 20 min left: (10 kWh + 60 kW x 1/3 h) x 2 = 60 kW
    predicted = predict_end_of_slot_demand_kw(jst(2026, 8, 3, 14), jst(2026, 8, 3, 14, 10), 10.0, 60.0)
    assert predicted == pytest.approx(60.0)
    # The same instant given in UTC.
    utc_now = jst(2026, 8, 3, 14, 10).astimezone(UTC)
    assert predict_end_of_slot_demand_kw(jst(2026, 8, 3, 14), utc_now, 10.0, 60.0) == pytest.approx(60.0)


def test_export_does_not_lower_the_prediction() -> None:
    assert predict_end_of_slot_demand_kw(jst(2026, 8, 3, 14), jst(2026, 8, 3, 14, 15), 10.0, -30.0) == 20.0


@pytest.mark.parametrize(
    ("start", "now", "message"),
    [
        (jst(2026, 8, 3, 14), jst(2026, 8, 3, 14, 30, 1), "outside the slot"),
        (jst(2026, 8, 3, 14), jst(2026, 8, 3, 13, 59), "outside the slot"),
        (jst(2026, 8, 3, 14, 5), jst(2026, 8, 3, 14, 10), "not a slot start"),
        (datetime(2026, 8, 3, 14), jst(2026, 8, 3, 14, 10), "timezone-aware"),  # noqa: DTZ001
    ],
)
def test_prediction_rejects_bad_times(start: datetime, now: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        predict_end_of_slot_demand_kw(start, now, 1.0, 1.0)


def test_prediction_rejects_negative_energy() -> None:
    with pytest.raises(ValueError, match="energy_so_far_kwh"):
        predict_end_of_slot_demand_kw(jst(2026, 8, 3, 14), jst(2026, 8, 3, 14), -1.0, 1.0)


@pytest.mark.parametrize(
    ("predicted_kw", "warn_ratio", "expected"),
    [(89.9, 0.9, "ok"), (90.0, 0.9, "warn"), (100.0, 0.9, "warn"), (100.1, 0.9, "over"), (85.0, 0.8, "warn")],
)
def test_demand_alarm(predicted_kw: float, warn_ratio: float, expected: str) -> None:
    assert demand_alarm(predicted_kw, 100.0, warn_ratio) == expected


def test_demand_alarm_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="target_kw"):
        demand_alarm(10.0, 0.0)
    with pytest.raises(ValueError, match="warn_ratio"):
        demand_alarm(10.0, 100.0, 1.5)
