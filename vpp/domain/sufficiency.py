"""Regional renewable sufficiency: the city's achievement rate, bottom-up and top-down.

Kawasaki's formula for its decarbonisation leading area (脱炭素先行地域)::

    achievement rate = (renewable electricity supplied + electricity saved) / civil-sector demand

FY2023: (183,147,067 + 1,883,728) kWh / 400,000,000 kWh = 46.26 % (published as "about 46 %").

The platform computes it bottom-up from metered sites and top-down from declared statistics, and
keeps the two apart in the result so every figure says where it came from.

Per metered site (all energies in kWh over the period):

- PV consumed on site = PV generation - export, per slot, never below 0. Export is assumed to come
  from PV first (conservative: a battery exporting would otherwise inflate the PV figure).
- Renewable contract supply = grid import x renewable share of the site's supply contract
  (a depot buying 100 % renewable power from the energy company counts in full).
- Demand = site load.

The function works on per-site sums, not slots, so a database can aggregate a fiscal year for
1,050 sites in SQL and hand in 1,050 rows; :func:`site_totals_from_slots` does the same sums in
Python for simulations and tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from vpp.domain.slots import require_aware

__all__ = [
    "ENERGY_DECIMALS",
    "RATIO_DECIMALS",
    "DeclaredFigures",
    "FigureProvenance",
    "OverlappingFigures",
    "Provenance",
    "RenewableSupply",
    "Savings",
    "SiteContract",
    "SiteSlotEnergy",
    "SiteTotals",
    "Sufficiency",
    "SufficiencyDemand",
    "compute_sufficiency",
    "pv_on_site_kwh",
    "rounded",
    "site_totals_from_slots",
]

Provenance = Literal["metered", "declared", "mixed", "none"]

# Published precision: ratios to 4 decimals (0.4626, i.e. 46.26 %; the city publishes "about 46 %"),
# shares such as completeness likewise. Energies to 6 decimals (1 mWh): far below any meter's
# resolution, and enough to drop the float noise of long sums (46.257698749999996 -> 46.257699).
RATIO_DECIMALS = 4
ENERGY_DECIMALS = 6


def rounded(value: float | None, decimals: int) -> float | None:
    """`value` rounded half-even to `decimals` places for display; None stays None."""
    return None if value is None else round(value, decimals)


def _check_energy(name: str, value: float) -> None:
    # NaN fails every comparison, so `not value >= 0` rejects it along with negatives.
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite, non-negative energy in kWh; got {value!r}")


@dataclass(frozen=True, slots=True)
class SiteContract:
    """A site's supply contract as far as sufficiency cares.

    Attributes
    ----------
    site_id : str
    renewable_share : float
        Fraction 0..1 of grid imports that the contract supplies from renewable sources.
    public : bool
        City public facility (True) or private company (False); private sites' data must never
        be exposed individually.
    """

    site_id: str
    renewable_share: float
    public: bool

    def __post_init__(self) -> None:
        if not 0.0 <= self.renewable_share <= 1.0:
            raise ValueError(f"renewable_share must be within 0..1; got {self.renewable_share!r}")


@dataclass(frozen=True, slots=True)
class SiteSlotEnergy:
    """Metered energy of one site in one 30-minute slot (all kWh, all non-negative)."""

    site_id: str
    slot_start: datetime
    import_kwh: float
    export_kwh: float
    pv_kwh: float
    battery_charge_kwh: float
    battery_discharge_kwh: float
    load_kwh: float

    def __post_init__(self) -> None:
        require_aware(self.slot_start, "slot_start")


@dataclass(frozen=True, slots=True)
class SiteTotals:
    """One site's energies summed over a period, with its contract.

    Attributes
    ----------
    contract : SiteContract
    import_kwh, export_kwh, pv_kwh, battery_charge_kwh, battery_discharge_kwh, load_kwh : float
        Period sums, kWh.
    pv_on_site_kwh : float
        Sum over slots of ``max(pv_kwh - export_kwh, 0)``. It must be clamped per slot before
        summing (in SQL: ``sum(greatest(pv_kwh - export_kwh, 0))``): clamping the period totals
        instead would let one slot's battery export cancel another slot's self-consumed PV.
    """

    contract: SiteContract
    import_kwh: float
    export_kwh: float
    pv_kwh: float
    battery_charge_kwh: float
    battery_discharge_kwh: float
    load_kwh: float
    pv_on_site_kwh: float

    def __post_init__(self) -> None:
        for name in _SITE_ENERGY_FIELDS:
            _check_energy(name, getattr(self, name))
        # Tolerance for float sums done elsewhere (SQL, numpy) in a different order.
        if self.pv_on_site_kwh > self.pv_kwh * (1 + 1e-9) + 1e-9:
            raise ValueError(
                f"pv_on_site_kwh {self.pv_on_site_kwh} exceeds pv_kwh {self.pv_kwh} for {self.contract.site_id}"
            )

    @property
    def contract_renewable_kwh(self) -> float:
        """Grid import counted as renewable under the site's contract, kWh."""
        return self.import_kwh * self.contract.renewable_share


_SITE_ENERGY_FIELDS = tuple(f.name for f in fields(SiteTotals) if f.name != "contract")


@dataclass(frozen=True, slots=True)
class DeclaredFigures:
    """Top-down statistics declared by someone else (e.g. the city's fiscal-year figures), kWh.

    ``source`` names where they come from, e.g. ``"Kawasaki City 2024-11-21, FY2023"``.
    ``includes_metered_sites``: the figures already contain the region's metered sites (a city's
    statistics cover every facility in it, so this is the default); only figures declared *net of* the
    metered sites may be added to metered totals.
    """

    renewable_supply_kwh: float
    saving_kwh: float
    demand_kwh: float
    source: str
    includes_metered_sites: bool = True

    def __post_init__(self) -> None:
        for name in ("renewable_supply_kwh", "saving_kwh", "demand_kwh"):
            _check_energy(f"declared {name}", getattr(self, name))


@dataclass(frozen=True, slots=True)
class RenewableSupply:
    """Renewable electricity supplied, by source, kWh."""

    pv_on_site_kwh: float
    contract_renewable_kwh: float
    declared_renewable_kwh: float

    @property
    def total_kwh(self) -> float:
        return self.pv_on_site_kwh + self.contract_renewable_kwh + self.declared_renewable_kwh


@dataclass(frozen=True, slots=True)
class Savings:
    """Electricity saved, kWh: DR reductions verified against a baseline, plus declared savings."""

    verified_dr_kwh: float
    declared_kwh: float

    @property
    def total_kwh(self) -> float:
        return self.verified_dr_kwh + self.declared_kwh


@dataclass(frozen=True, slots=True)
class SufficiencyDemand:
    """Civil-sector electricity demand, kWh: metered site load plus declared demand."""

    metered_kwh: float
    declared_kwh: float

    @property
    def total_kwh(self) -> float:
        return self.metered_kwh + self.declared_kwh


@dataclass(frozen=True, slots=True)
class FigureProvenance:
    """Where each figure of a :class:`Sufficiency` comes from."""

    supply: Provenance
    savings: Provenance
    demand: Provenance
    ratio: Provenance


@dataclass(frozen=True, slots=True)
class Sufficiency:
    """Renewable sufficiency of a region over a period.

    Attributes
    ----------
    supply : RenewableSupply
    savings : Savings
    demand : SufficiencyDemand
    ratio : float or None
        (supply + savings) / demand as a fraction (0.4626 = 46.26 %); None when demand is 0.
        Not capped at 1: a surplus region reports above 100 %.
    co2_avoided_kg : float
        (renewable supply + savings) x grid CO2 factor, kg-CO2.
    provenance : FigureProvenance
    completeness : float or None
        Metered slots present / slots expected, 0..1; None when no slot was expected.
    contributing_sites : int
        Metered sites included.
    private_sites : int
        How many of those are private, so an API can suppress aggregates that would expose
        fewer than k private sites.
    """

    supply: RenewableSupply
    savings: Savings
    demand: SufficiencyDemand
    ratio: float | None
    co2_avoided_kg: float
    provenance: FigureProvenance
    completeness: float | None
    contributing_sites: int
    private_sites: int

    @property
    def demand_kwh(self) -> float:
        """Total demand (metered + declared), kWh."""
        return self.demand.total_kwh

    @property
    def ratio_pct(self) -> float | None:
        """The ratio as a percentage, as the city publishes it."""
        return None if self.ratio is None else self.ratio * 100.0


def pv_on_site_kwh(pv_kwh: npt.ArrayLike, export_kwh: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """PV consumed on site per slot, kWh: ``max(pv - export, 0)``.

    Export is attributed to PV first, so exports beyond PV generation (battery or a meter quirk)
    clamp to zero rather than subtracting from other slots.
    """
    pv = np.asarray(pv_kwh, dtype=np.float64)
    export = np.asarray(export_kwh, dtype=np.float64)
    return np.maximum(pv - export, 0.0)


def site_totals_from_slots(contract: SiteContract, slots: Sequence[SiteSlotEnergy]) -> SiteTotals:
    """Sum one site's slots into :class:`SiteTotals`, clamping self-consumed PV per slot.

    Raises
    ------
    ValueError
        If a slot belongs to another site or holds a negative or non-finite energy.
    """
    foreign = {s.site_id for s in slots} - {contract.site_id}
    if foreign:
        raise ValueError(f"slots of {sorted(foreign)} passed for site {contract.site_id}")
    table = np.array(
        [
            (s.import_kwh, s.export_kwh, s.pv_kwh, s.battery_charge_kwh, s.battery_discharge_kwh, s.load_kwh)
            for s in slots
        ],
        dtype=np.float64,
    ).reshape(-1, 6)
    if not np.all(np.isfinite(table)) or np.any(table < 0):
        raise ValueError(f"slot energies for {contract.site_id} must be finite and non-negative kWh")
    sums = table.sum(axis=0)
    return SiteTotals(
        contract=contract,
        import_kwh=float(sums[0]),
        export_kwh=float(sums[1]),
        pv_kwh=float(sums[2]),
        battery_charge_kwh=float(sums[3]),
        battery_discharge_kwh=float(sums[4]),
        load_kwh=float(sums[5]),
        pv_on_site_kwh=float(pv_on_site_kwh(table[:, 2], table[:, 1]).sum()),
    )


def _provenance(metered: bool, declared: bool) -> Provenance:
    if metered and declared:
        return "mixed"
    if metered:
        return "metered"
    if declared:
        return "declared"
    return "none"


class OverlappingFigures(ValueError):  # noqa: N818 - named for what it is, like InfeasiblePlan
    """Metered sites and declared figures that already include them would be counted twice."""


def compute_sufficiency(
    metered: Iterable[SiteTotals],
    declared: DeclaredFigures | None,
    verified_dr_kwh: float,
    co2_factor_kg_per_kwh: float,
    slots_present: int,
    slots_expected: int,
) -> Sufficiency:
    """Compute the renewable achievement rate from metered site totals and/or declared figures.

    Parameters
    ----------
    metered : iterable of SiteTotals
        One entry per metered site over the period (site ids must be unique).
    declared : DeclaredFigures or None
        Top-down figures to add. Added to metered totals only when declared net of the metered
        sites (``includes_metered_sites=False``); otherwise the same sites would count twice.
    verified_dr_kwh : float
        Reductions verified against the DR baseline over the period, kWh.
    co2_factor_kg_per_kwh : float
        Grid emission factor, kg-CO2/kWh (a setting, e.g. 0.42-0.46).
    slots_present, slots_expected : int
        Metered site-slots found and expected (sites x slots of the period).

    Returns
    -------
    Sufficiency

    Raises
    ------
    OverlappingFigures
        Metered sites together with declared figures that include them: compute the two apart.

    Notes
    -----
    Provenance follows the inputs, not the values: a metered site measuring 0 kWh of PV still makes
    the supply figure "metered". Savings are metered when sites are metered (DR verification ran
    over them) or verified DR is positive. ``completeness`` is capped at 1 because a slot still in
    progress can already hold data before it is counted as expected.
    """
    _check_energy("verified_dr_kwh", verified_dr_kwh)
    if not (co2_factor_kg_per_kwh >= 0 and math.isfinite(co2_factor_kg_per_kwh)):
        raise ValueError(f"co2_factor_kg_per_kwh must be finite and >= 0; got {co2_factor_kg_per_kwh!r}")
    if slots_present < 0 or slots_expected < 0:
        raise ValueError("slots_present and slots_expected must be >= 0")

    # math.fsum keeps a 1,050-site sum of large kWh values exact to the last digit.
    pv_terms: list[float] = []
    contract_terms: list[float] = []
    load_terms: list[float] = []
    seen: set[str] = set()
    private_sites = 0
    for site in metered:
        site_id = site.contract.site_id
        if site_id in seen:
            raise ValueError(f"site {site_id} appears twice in the metered totals")
        seen.add(site_id)
        private_sites += not site.contract.public
        pv_terms.append(site.pv_on_site_kwh)
        contract_terms.append(site.import_kwh * site.contract.renewable_share)
        load_terms.append(site.load_kwh)

    has_metered = bool(seen)
    has_declared = declared is not None
    if has_metered and declared is not None and declared.includes_metered_sites:
        raise OverlappingFigures(
            f"declared figures ({declared.source}) already include the {len(seen)} metered site(s) of the same "
            "region and period; adding them would count those sites twice"
        )
    supply = RenewableSupply(
        pv_on_site_kwh=math.fsum(pv_terms),
        contract_renewable_kwh=math.fsum(contract_terms),
        declared_renewable_kwh=declared.renewable_supply_kwh if declared else 0.0,
    )
    savings = Savings(
        verified_dr_kwh=float(verified_dr_kwh),
        declared_kwh=declared.saving_kwh if declared else 0.0,
    )
    demand = SufficiencyDemand(
        metered_kwh=math.fsum(load_terms),
        declared_kwh=declared.demand_kwh if declared else 0.0,
    )
    credited_kwh = supply.total_kwh + savings.total_kwh
    ratio = credited_kwh / demand.total_kwh if demand.total_kwh > 0 else None
    completeness = min(slots_present / slots_expected, 1.0) if slots_expected > 0 else None

    savings_metered = has_metered or verified_dr_kwh > 0
    provenance = FigureProvenance(
        supply=_provenance(has_metered, has_declared),
        savings=_provenance(savings_metered, has_declared),
        demand=_provenance(has_metered, has_declared),
        ratio=_provenance(savings_metered, has_declared),
    )
    return Sufficiency(
        supply=supply,
        savings=savings,
        demand=demand,
        ratio=ratio,
        co2_avoided_kg=credited_kwh * co2_factor_kg_per_kwh,
        provenance=provenance,
        completeness=completeness,
        contributing_sites=len(seen),
        private_sites=private_sites,
    )
