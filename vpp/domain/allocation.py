"""Split a regional demand-response request ("X kW less") across sites.

Method (water-filling): every site gets a share of the request proportional to its weight, which is
its available flexibility unless a different weight is given (e.g. a contracted share or a
reliability score). A site whose share exceeds its availability is capped at its availability and
the excess is shared again among the remaining sites, in proportion to their weights, until the
request is placed or every site is full. What cannot be placed is the shortfall.

With the default weights (= availability) no cap binds unless the request exceeds the total
availability: a proportional share r·a_i/Σa is ≤ a_i exactly when r ≤ Σa.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["RegionalAllocation", "SiteFlexibility", "allocate_regional_request"]

# Requests are in kW; below a microwatt the remainder is rounding, not a shortfall.
_EPSILON_KW = 1e-9


@dataclass(frozen=True)
class SiteFlexibility:
    """A site's available reduction, kW, and optionally its share weight (≥ 0; 0 = not called)."""

    site_id: str
    available_kw: float
    weight: float | None = None

    @property
    def effective_weight(self) -> float:
        return self.available_kw if self.weight is None else self.weight


@dataclass(frozen=True)
class RegionalAllocation:
    """Reduction asked of each site (kW, in input order) and what could not be placed (kW)."""

    requested_kw: float
    allocations_kw: dict[str, float]
    shortfall_kw: float

    @property
    def allocated_kw(self) -> float:
        return sum(self.allocations_kw.values())


def allocate_regional_request(requested_kw: float, sites: Sequence[SiteFlexibility]) -> RegionalAllocation:
    """Allocate ``requested_kw`` across ``sites`` proportionally, capped at each site's availability.

    Parameters
    ----------
    requested_kw : float
        The regional reduction asked for, kW (≥ 0).
    sites : sequence of SiteFlexibility
        Unique site ids; availability and weights ≥ 0.

    Returns
    -------
    RegionalAllocation
        ``allocations_kw`` has every site (0.0 for those not called); ``shortfall_kw`` =
        requested − allocated, 0 when the request is fully placed.

    Raises
    ------
    ValueError
        Negative or non-finite request, availability or weight; duplicate site ids.
    """
    if not (math.isfinite(requested_kw) and requested_kw >= 0):
        raise ValueError(f"requested_kw must be a finite number ≥ 0, got {requested_kw}")
    seen: set[str] = set()
    for site in sites:
        if site.site_id in seen:
            raise ValueError(f"duplicate site_id {site.site_id!r}")
        seen.add(site.site_id)
        for name, value in (("available_kw", site.available_kw), ("weight", site.effective_weight)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"site {site.site_id!r}: {name} must be a finite number ≥ 0, got {value}")

    allocations = {site.site_id: 0.0 for site in sites}
    active = [site for site in sites if site.available_kw > 0 and site.effective_weight > 0]
    remaining_kw = requested_kw
    # Each round either places everything or fills at least one site, so it ends within len(sites).
    while remaining_kw > _EPSILON_KW and active:
        total_weight = sum(site.effective_weight for site in active)
        shares = {site.site_id: remaining_kw * site.effective_weight / total_weight for site in active}
        full = [site for site in active if shares[site.site_id] >= site.available_kw]
        if not full:
            for site_id, share_kw in shares.items():
                allocations[site_id] = share_kw
            remaining_kw = 0.0
            break
        for site in full:
            allocations[site.site_id] = site.available_kw
            remaining_kw -= site.available_kw
        full_ids = {site.site_id for site in full}
        active = [site for site in active if site.site_id not in full_ids]

    shortfall_kw = remaining_kw if remaining_kw > _EPSILON_KW else 0.0
    return RegionalAllocation(requested_kw, allocations, shortfall_kw)
