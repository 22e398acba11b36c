from __future__ import annotations

import pytest

from services.api.csv_import import CsvError, parse_capacity_csv, parse_fiscal_year_csv
from vpp.published import CAPACITY_CSV, LEADING_AREA_FY_CSV, published_csv


def test_city_fiscal_year_file() -> None:
    figures = parse_fiscal_year_csv(published_csv(LEADING_AREA_FY_CSV))
    fy2023 = next(f for f in figures if f.fiscal_year == 2023)
    assert fy2023.renewable_supply_kwh == 183_147_067
    assert fy2023.saving_kwh == 1_883_728
    assert fy2023.demand_kwh == 400_000_000


def test_city_capacity_file_checks_its_total() -> None:
    figures = parse_capacity_csv(published_csv(CAPACITY_CSV))
    assert {f.category for f in figures} == {"solar_pv_residential_and_commercial", "biomass", "other_renewable"}
    assert sum(f.capacity_kw for f in figures) == 204_895
    assert {f.fiscal_year for f in figures} == {2020}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("", "no header"),
        ("fiscal_year,renewable_supply_kwh,civil_demand_kwh\n", "no data rows"),
        ("fiscal_year,renewable_supply_kwh,civil_demand_kwh\n23,1,2\n", "line 2: fiscal_year"),
        ("fiscal_year,renewable_supply_kwh,civil_demand_kwh\n2023,-1,2\n", "non-negative"),
        ("fiscal_year,renewable_supply_kwh,civil_demand_kwh\n2023,nan,2\n", "non-negative"),
        ("fiscal_year,renewable_supply_kwh\n2023,1\n", "civil_demand_kwh"),
        ("fiscal_year,renewable_supply_kwh,civil_demand_kwh\n2023,1,2,3\n", "4 values for 3 columns"),
    ],
)
def test_fiscal_year_errors_say_where(body: str, words: str) -> None:
    with pytest.raises(CsvError, match=words):
        parse_fiscal_year_csv(body)
