"""Sufficiency reports: domain computation over database totals, rendered once and cached by version."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.auth import Principal
from services.api.cache import CachedReport
from services.api.errors import ProblemError
from services.api.schemas import DeclaredSeparateOut, DemandOut, PeriodOut, SavingsOut, SufficiencyOut, SupplyOut
from vpp.domain.periods import Period, PeriodError, elapsed_slots, parse_period
from vpp.domain.sufficiency import (
    DeclaredFigures,
    OverlappingFigures,
    SiteContract,
    Sufficiency,
    compute_sufficiency,
)
from vpp.postgres.reports import RegionRef, declared_for_period, member_contracts, site_totals, verified_dr_kwh
from vpp.settings import Settings

__all__ = ["check_city_may_see", "parse_period_query", "region_report", "site_report"]


# Periods are immutable and parsing is pure: repeated queries (the dashboard's) skip the regexes.
_parse_period_cached = functools.lru_cache(maxsize=4096)(parse_period)


def parse_period_query(kind: str, value: str, *, location: str = "query") -> Period:
    """`parse_period` with its errors turned into a 422 naming the field (`period` or `value`)."""
    try:
        return _parse_period_cached(kind, value)
    except PeriodError as exc:
        name = "period" if exc.field == "kind" else "value"
        raise ProblemError(
            422,
            f"{location}.{name}: {exc}",
            slug="validation",
            title="Invalid request",
            extra={"errors": [{"loc": [location, name], "msg": str(exc), "type": "value_error"}]},
        ) from None


def check_city_may_see(principal: Principal, private_sites: int, k: int) -> None:
    """Refuse an aggregate to the city role when it would expose fewer than k private sites."""
    if principal.role == "city" and 0 < private_sites < k:
        raise ProblemError(
            403,
            f"this aggregate is suppressed: it includes {private_sites} private site(s), fewer than {k}, "
            "so it would expose an individual company's consumption",
            slug="aggregate-suppressed",
            title="Aggregate suppressed",
        )


def _render(
    result: Sufficiency,
    period: Period,
    *,
    region_id: str | None,
    site_id: str | None,
    member_sites: int,
    slots_present: int,
    slots_expected: int,
    declared: DeclaredFigures | None,
    version: int,
    co2_factor: float,
    now: datetime,
    separately: DeclaredSeparateOut | None = None,
) -> bytes:
    out = SufficiencyOut(
        region_id=region_id,
        site_id=site_id,
        period=PeriodOut(kind=period.kind, label=period.label, start=period.start, end=period.end),
        supply=SupplyOut(
            pv_on_site_kwh=result.supply.pv_on_site_kwh,
            contract_renewable_kwh=result.supply.contract_renewable_kwh,
            declared_kwh=result.supply.declared_renewable_kwh,
            total_kwh=result.supply.total_kwh,
            provenance=result.provenance.supply,
        ),
        savings=SavingsOut(
            verified_dr_kwh=result.savings.verified_dr_kwh,
            declared_kwh=result.savings.declared_kwh,
            total_kwh=result.savings.total_kwh,
            provenance=result.provenance.savings,
        ),
        demand=DemandOut(
            metered_kwh=result.demand.metered_kwh,
            declared_kwh=result.demand.declared_kwh,
            total_kwh=result.demand.total_kwh,
            provenance=result.provenance.demand,
        ),
        ratio=result.ratio,
        ratio_pct=result.ratio_pct,
        ratio_provenance=result.provenance.ratio,
        co2_avoided_kg=result.co2_avoided_kg,
        co2_factor_kg_per_kwh=co2_factor,
        completeness=result.completeness,
        slots_present=slots_present,
        slots_expected=slots_expected,
        member_sites=member_sites,
        contributing_sites=result.contributing_sites,
        private_sites=result.private_sites,
        declared_sources=declared.source if declared else None,
        declared_separately=separately,
        data_version=version,
        computed_at=now,
    )
    return out.model_dump_json().encode()


async def region_report(
    conn: AsyncConnection, settings: Settings, region: RegionRef, period: Period, now: datetime, *, live: bool = False
) -> CachedReport:
    """A region's sufficiency over `period`. `live`: the running slot counts as expected."""
    contracts = await member_contracts(conn, region.region_pk)
    totals, present = await site_totals(conn, contracts, period, region_pk=region.region_pk)
    declared = await declared_for_period(conn, region.region_pk, period)
    dr_kwh = await verified_dr_kwh(conn, list(contracts), period)
    expected = len(contracts) * (1 if live else elapsed_slots(period, now))
    separately: DeclaredSeparateOut | None = None
    try:
        result = compute_sufficiency(totals, declared, dr_kwh, settings.api_co2_factor_kg_per_kwh, present, expected)
    except OverlappingFigures as overlap:
        # The declared figures already count the metered sites: the headline is metered only and the
        # declared figures are reported beside it, each complete on its own.
        assert declared is not None
        result = compute_sufficiency(totals, None, dr_kwh, settings.api_co2_factor_kg_per_kwh, present, expected)
        alone = compute_sufficiency([], declared, 0.0, settings.api_co2_factor_kg_per_kwh, 0, 0)
        separately = DeclaredSeparateOut(
            renewable_supply_kwh=declared.renewable_supply_kwh, saving_kwh=declared.saving_kwh,
            demand_kwh=declared.demand_kwh, ratio=alone.ratio, source=declared.source, reason=str(overlap),
        )  # fmt: skip
        declared = None
    body = _render(
        result,
        period,
        region_id=region.region_id,
        site_id=None,
        member_sites=len(contracts),
        slots_present=present,
        slots_expected=expected,
        declared=declared,
        version=region.version,
        co2_factor=settings.api_co2_factor_kg_per_kwh,
        now=now,
        separately=separately,
    )
    return CachedReport(body, result.private_sites)


async def site_report(
    conn: AsyncConnection, settings: Settings, site_pk: int, contract: SiteContract, period: Period, now: datetime
) -> bytes:
    """One site's self-sufficiency over `period` (metered only)."""
    totals, present = await site_totals(conn, {site_pk: contract}, period)
    expected = elapsed_slots(period, now)
    dr_kwh = await verified_dr_kwh(conn, [site_pk], period)
    result = compute_sufficiency(totals, None, dr_kwh, settings.api_co2_factor_kg_per_kwh, present, expected)
    return _render(
        result,
        period,
        region_id=None,
        site_id=contract.site_id,
        member_sites=1,
        slots_present=present,
        slots_expected=expected,
        declared=None,
        version=0,
        co2_factor=settings.api_co2_factor_kg_per_kwh,
        now=now,
    )
