from __future__ import annotations

import csv
import dataclasses
from datetime import datetime, timedelta

import pytest

from vpp.domain.slots import JST
from vpp.domain.sufficiency import (
    DeclaredFigures,
    OverlappingFigures,
    SiteContract,
    SiteSlotEnergy,
    SiteTotals,
    compute_sufficiency,
    pv_on_site_kwh,
    site_totals_from_slots,
)
from vpp.published import LEADING_AREA_FY_CSV, published_csv

# Kawasaki City, 2024-11-21 (vpp/published/kawasaki_leading_area_fy.csv): civil-sector demand ≈ 400 GWh/yr.
FY2023 = DeclaredFigures(183_147_067, 1_883_728, 400_000_000, "Kawasaki City FY2023")
FY2022 = DeclaredFigures(31_825_490, 1_220_755, 400_000_000, "Kawasaki City FY2022")

DEPOT = SiteContract("yamato-takatsu", renewable_share=1.0, public=False)
SCHOOL = SiteContract("school-01", renewable_share=0.3, public=True)
T0 = datetime(2026, 11, 23, 0, tzinfo=JST)


def slot(
    contract: SiteContract,
    index: int,
    *,
    imp: float = 0.0,
    exp: float = 0.0,
    pv: float = 0.0,
    charge: float = 0.0,
    discharge: float = 0.0,
    load: float = 0.0,
) -> SiteSlotEnergy:
    return SiteSlotEnergy(contract.site_id, T0 + index * timedelta(minutes=30), imp, exp, pv, charge, discharge, load)


def depot_totals() -> SiteTotals:
    # Load = import - export + PV - charge + discharge in every slot (a lossless battery).
    return site_totals_from_slots(
        DEPOT,
        [
            slot(DEPOT, 0, imp=10, load=10),  # night: EVs charging from the grid
            slot(DEPOT, 24, exp=3, pv=20, charge=5, load=12),  # noon: 17 kWh of PV used on site
            slot(DEPOT, 36, imp=5, pv=2, discharge=5, load=12),  # evening: 2 kWh of PV used
        ],
    )


def school_totals() -> SiteTotals:
    return site_totals_from_slots(SCHOOL, [slot(SCHOOL, 20, imp=100, load=100)])


def test_city_fy2023_declared_figures() -> None:
    result = compute_sufficiency([], FY2023, 0.0, 0.45, 0, 0)
    assert result.ratio == pytest.approx(185_030_795 / 400_000_000)
    assert result.ratio_pct is not None
    assert round(result.ratio_pct, 1) == 46.3
    assert result.supply.declared_renewable_kwh == 183_147_067
    assert result.savings.declared_kwh == 1_883_728
    assert result.demand_kwh == 400_000_000
    assert result.co2_avoided_kg == pytest.approx(185_030_795 * 0.45)
    provenance = result.provenance
    assert (provenance.supply, provenance.savings, provenance.demand, provenance.ratio) == ("declared",) * 4
    assert result.completeness is None
    assert (result.contributing_sites, result.private_sites) == (0, 0)


def test_city_fy2022_declared_figures() -> None:
    result = compute_sufficiency([], FY2022, 0.0, 0.45, 0, 0)
    assert result.ratio == pytest.approx(33_046_245 / 400_000_000)
    assert result.ratio_pct is not None
    assert round(result.ratio_pct, 1) == 8.3
    assert result.provenance.ratio == "declared"


def test_figures_above_match_the_city_csv_and_its_published_rate() -> None:
    hardcoded = {2022: FY2022, 2023: FY2023}
    rows = [line for line in published_csv(LEADING_AREA_FY_CSV).splitlines() if not line.startswith("#")]
    for row in csv.DictReader(rows):
        declared = hardcoded[int(row["fiscal_year"])]
        assert (declared.renewable_supply_kwh, declared.saving_kwh, declared.demand_kwh) == (
            int(row["renewable_supply_kwh"]),
            int(row["saving_kwh"]),
            int(row["civil_demand_kwh"]),
        )
        result = compute_sufficiency([], declared, 0.0, 0.45, 0, 0)
        assert result.ratio_pct is not None
        if row["published_rate_pct"]:
            assert round(result.ratio_pct) == int(row["published_rate_pct"])


def test_site_totals_clamp_self_consumed_pv_per_slot() -> None:
    totals = depot_totals()
    assert (totals.import_kwh, totals.export_kwh, totals.pv_kwh, totals.load_kwh) == (15, 3, 22, 34)
    assert (totals.battery_charge_kwh, totals.battery_discharge_kwh) == (5, 5)
    assert totals.pv_on_site_kwh == 19  # (20 - 3) + 2
    assert totals.contract_renewable_kwh == 15


def test_depot_with_full_renewable_contract_counts_everything() -> None:
    result = compute_sufficiency([depot_totals()], None, 0.0, 0.5, 3, 3)
    assert result.supply.pv_on_site_kwh == 19
    assert result.supply.contract_renewable_kwh == 15
    assert result.demand.metered_kwh == 34
    assert result.ratio == pytest.approx(1.0)  # 34 kWh renewable / 34 kWh load
    assert result.co2_avoided_kg == pytest.approx(17.0)
    assert (result.provenance.supply, result.provenance.demand, result.provenance.ratio) == ("metered",) * 3
    assert (result.contributing_sites, result.private_sites) == (1, 1)
    assert result.completeness == 1.0


def test_metered_sites_with_partial_contract_and_verified_dr() -> None:
    result = compute_sufficiency([depot_totals(), school_totals()], None, 6.0, 0.5, 4, 4)
    assert result.supply.contract_renewable_kwh == pytest.approx(15 + 30)
    assert result.supply.total_kwh == pytest.approx(64)
    assert result.savings.verified_dr_kwh == 6
    assert result.demand_kwh == 134
    assert result.ratio == pytest.approx(70 / 134)
    assert result.co2_avoided_kg == pytest.approx(35)
    assert (result.contributing_sites, result.private_sites) == (2, 1)
    assert result.provenance.savings == "metered"


def test_metered_sites_and_declared_figures_that_include_them_are_refused() -> None:
    # The city's FY2023 statistics cover every facility in the city, the metered depot included.
    with pytest.raises(OverlappingFigures, match="count those sites twice"):
        compute_sufficiency([depot_totals()], FY2023, 0.0, 0.45, 3, 3)


def test_mixed_metered_and_declared_net_of_the_metered_sites() -> None:
    net = dataclasses.replace(FY2023, includes_metered_sites=False)
    result = compute_sufficiency([depot_totals()], net, 0.0, 0.45, 3, 3)
    assert result.supply.total_kwh == 183_147_067 + 34
    assert result.demand.declared_kwh == 400_000_000
    assert result.demand.metered_kwh == 34
    assert result.ratio == pytest.approx((183_147_067 + 1_883_728 + 34) / 400_000_034)
    provenance = result.provenance
    assert (provenance.supply, provenance.savings, provenance.demand, provenance.ratio) == ("mixed",) * 4


def test_verified_dr_alone_makes_declared_savings_mixed() -> None:
    result = compute_sufficiency([], FY2023, 1_000.0, 0.45, 0, 0)
    assert result.provenance.savings == "mixed"
    assert result.provenance.supply == "declared"
    assert result.savings.total_kwh == 1_884_728


def test_zero_demand_gives_no_ratio() -> None:
    nothing = compute_sufficiency([], None, 0.0, 0.45, 0, 0)
    assert nothing.ratio is None
    assert nothing.ratio_pct is None
    assert nothing.co2_avoided_kg == 0
    assert nothing.provenance.ratio == "none"
    idle = site_totals_from_slots(SCHOOL, [slot(SCHOOL, 0)])
    measured_zero = compute_sufficiency([idle], None, 0.0, 0.45, 1, 1)
    assert measured_zero.ratio is None
    assert measured_zero.provenance.demand == "metered"


def test_export_beyond_pv_is_clamped_not_subtracted() -> None:
    totals = site_totals_from_slots(
        DEPOT,
        [
            slot(DEPOT, 24, pv=10, load=10),
            slot(DEPOT, 36, exp=4, discharge=4),  # the battery exports 4 kWh with no PV
            slot(DEPOT, 37, exp=5, pv=2, discharge=3),
        ],
    )
    assert totals.pv_on_site_kwh == 10  # 10 + 0 + 0, not 12 - 9 = 3
    assert pv_on_site_kwh([2.0, 10.0], [5.0, 3.0]).tolist() == [0.0, 7.0]


def test_completeness() -> None:
    assert compute_sufficiency([school_totals()], None, 0, 0.45, 90, 100).completeness == pytest.approx(0.9)
    # A slot still in progress can hold data before it counts as expected.
    assert compute_sufficiency([school_totals()], None, 0, 0.45, 101, 100).completeness == 1.0
    assert compute_sufficiency([school_totals()], None, 0, 0.45, 0, 0).completeness is None
    with pytest.raises(ValueError, match="slots_present"):
        compute_sufficiency([], None, 0, 0.45, -1, 10)


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="renewable_share"):
        SiteContract("x", renewable_share=1.5, public=True)
    with pytest.raises(ValueError, match="appears twice"):
        compute_sufficiency([school_totals(), school_totals()], None, 0, 0.45, 2, 2)
    with pytest.raises(ValueError, match="import_kwh"):
        SiteTotals(SCHOOL, -1, 0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError, match="exceeds pv_kwh"):
        SiteTotals(SCHOOL, 0, 0, 5, 0, 0, 5, 6)
    with pytest.raises(ValueError, match="school-01"):
        site_totals_from_slots(DEPOT, [slot(SCHOOL, 0)])
    with pytest.raises(ValueError, match="non-negative"):
        site_totals_from_slots(DEPOT, [slot(DEPOT, 0, imp=float("nan"))])
    with pytest.raises(ValueError, match="co2_factor"):
        compute_sufficiency([], FY2023, 0, -0.1, 0, 0)
    with pytest.raises(ValueError, match="verified_dr_kwh"):
        compute_sufficiency([], FY2023, -5, 0.45, 0, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        SiteSlotEnergy("x", datetime(2026, 1, 1), 0, 0, 0, 0, 0, 0)  # noqa: DTZ001


def test_no_slots_sum_to_zero() -> None:
    totals = site_totals_from_slots(DEPOT, [])
    assert totals.load_kwh == 0
    assert totals.pv_on_site_kwh == 0
