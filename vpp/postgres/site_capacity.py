"""A site's import capacity for the scheduler's plausibility check (vpp.domain.limit_plausibility)."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from vpp.domain.limit_plausibility import SiteCapacity

__all__ = ["site_capacity"]

# Rated import: the contract demand, else a bound from what the site has: four times its demand
# target plus the ratings of its devices (the same bound the rollup applies to an unrated meter).
_CAPACITY = """
SELECT s.site_id,
       coalesce(s.contract_demand_kw,
                4 * s.demand_target_kw + (SELECT coalesce(sum(d.rated_power_kw), 0) FROM devices d WHERE d.site_pk = s.id)),
       (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY e.import_kwh * 2)
          FROM site_energy_30min e
         WHERE e.site_pk = s.id AND e.coverage >= 0.5 AND e.slot_start >= %(since)s AND e.slot_start < %(now)s),
       (SELECT count(*) FROM site_energy_30min e
         WHERE e.site_pk = s.id AND e.coverage >= 0.5 AND e.slot_start >= %(since)s AND e.slot_start < %(now)s)
FROM sites s WHERE s.id = %(site_pk)s
"""


def site_capacity(conn: psycopg.Connection, site_pk: int, now: datetime, history_days: int = 28) -> SiteCapacity:
    row = conn.execute(
        _CAPACITY, {"site_pk": site_pk, "now": now, "since": now - timedelta(days=history_days)}
    ).fetchone()
    if row is None:
        raise LookupError(f"no site with id {site_pk}")
    site_id, rated, p95, slots = row
    return SiteCapacity(site_id, rated, p95, int(slots))
