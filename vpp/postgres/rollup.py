"""Keeps the 30-minute energy tables current from raw readings.

Ingest marks (device, slot) pairs dirty in the same transaction as the readings; this rollup
claims dirty pairs and recomputes them from the raw readings, so late and out-of-order data
correct the slot instead of being added on top. Energy per interval between consecutive readings:
the counter delta when both ends carry a counter (and it did not reset), otherwise the trapezoid
of power. Intervals longer than the gap bound are not integrated (the device was offline: the
slot's `coverage` shows it). An interval straddling a slot boundary is split pro rata.

A pair waits `delay_s` after it was first marked before it is recomputed: telemetry arrives every
few seconds, and recomputing an open slot after each report rewrote its rows several times a minute
for every device (row versions, WAL and vacuum work that competed with ingest itself). The table is
then current to within the delay instead of the rollup interval.

One rollup runs at a time (a session advisory lock): several ingest workers may call it, and whoever
holds the lock does the work. Dirty pairs are claimed in their own short transaction: ingest writers
insert into `energy_dirty` with ON CONFLICT, and a long computation holding deleted-but-uncommitted
claims would make every writer wait on it (the soak test saw ingest stall for minutes that way). If
the computation fails, the claims are put back.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psycopg

__all__ = ["RollupResult", "run_rollup"]

_LOCK_KEY = 0x5650_5030  # "VPP0"

_CLAIM = """
DELETE FROM energy_dirty
WHERE (device_pk, slot_start) IN (
    SELECT device_pk, slot_start FROM energy_dirty
    WHERE dirty_since <= now() - %(delay)s * interval '1 second'
    ORDER BY device_pk, slot_start LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
RETURNING device_pk, slot_start
"""
_RECLAIM = """
INSERT INTO energy_dirty (device_pk, slot_start)
SELECT * FROM unnest(%s::int[], %s::timestamptz[]) ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""

_DEVICE_ROLLUP = """
WITH claimed AS (
    SELECT * FROM unnest(%(claimed_devices)s::int[], %(claimed_slots)s::timestamptz[]) AS c(device_pk, slot_start)
), ranges AS (
    SELECT device_pk, min(slot_start) AS lo, max(slot_start) + interval '30 minutes' AS hi
    FROM claimed GROUP BY device_pk
), pts AS (
    SELECT r.device_pk, r.ts, r.power_kw, r.energy_pos_kwh, r.energy_neg_kwh,
           lag(r.ts) OVER w AS p_ts, lag(r.power_kw) OVER w AS p_power,
           lag(r.energy_pos_kwh) OVER w AS p_pos, lag(r.energy_neg_kwh) OVER w AS p_neg
    FROM ranges g
    JOIN readings r ON r.device_pk = g.device_pk
     AND r.ts >= g.lo - %(gap)s * interval '1 second'
     AND r.ts <= g.hi + %(gap)s * interval '1 second'
    WINDOW w AS (PARTITION BY r.device_pk ORDER BY r.ts)
), intervals AS (
    SELECT device_pk, p_ts AS t0, ts AS t1, extract(epoch FROM ts - p_ts)::float8 AS dt_s,
        CASE WHEN energy_pos_kwh IS NOT NULL AND p_pos IS NOT NULL AND energy_pos_kwh >= p_pos
                 THEN energy_pos_kwh - p_pos
             WHEN power_kw IS NOT NULL AND p_power IS NOT NULL
                 THEN greatest((power_kw + p_power) / 2, 0) * extract(epoch FROM ts - p_ts) / 3600
             ELSE 0 END AS pos,
        CASE WHEN energy_neg_kwh IS NOT NULL AND p_neg IS NOT NULL AND energy_neg_kwh >= p_neg
                 THEN energy_neg_kwh - p_neg
             WHEN power_kw IS NOT NULL AND p_power IS NOT NULL
                 THEN greatest(-(power_kw + p_power) / 2, 0) * extract(epoch FROM ts - p_ts) / 3600
             ELSE 0 END AS neg
    FROM pts
    WHERE p_ts IS NOT NULL AND ts - p_ts <= %(gap)s * interval '1 second'
), placed AS (
    SELECT i.*, b.s0,
           least(1.0, extract(epoch FROM b.s0 + interval '30 minutes' - i.t0)::float8 / i.dt_s) AS f0
    FROM intervals i
    CROSS JOIN LATERAL (SELECT date_bin('30 minutes', i.t0, TIMESTAMPTZ '2000-01-01 00:00+00') AS s0) b
), split AS (
    SELECT device_pk, s0 AS slot_start, pos * f0 AS pos, neg * f0 AS neg, dt_s * f0 AS cov FROM placed
    UNION ALL
    SELECT device_pk, s0 + interval '30 minutes', pos * (1 - f0), neg * (1 - f0), dt_s * (1 - f0)
    FROM placed WHERE f0 < 1
), agg AS (
    SELECT s.device_pk, s.slot_start, sum(s.pos) AS pos, sum(s.neg) AS neg, sum(s.cov) AS cov
    FROM split s JOIN claimed c USING (device_pk, slot_start)
    GROUP BY s.device_pk, s.slot_start
), seen AS (
    UPDATE devices d SET last_reading_at = m.last_ts
    FROM (SELECT device_pk, max(ts) AS last_ts FROM pts GROUP BY device_pk) m
    WHERE d.id = m.device_pk AND (d.last_reading_at IS NULL OR d.last_reading_at < m.last_ts)
)
INSERT INTO device_energy_30min (device_pk, slot_start, pos_kwh, neg_kwh, covered_s)
SELECT device_pk, slot_start, pos, neg, cov FROM agg
ON CONFLICT (device_pk, slot_start) DO UPDATE
SET pos_kwh = EXCLUDED.pos_kwh, neg_kwh = EXCLUDED.neg_kwh, covered_s = EXCLUDED.covered_s
RETURNING device_pk, slot_start
"""

# Site flows from device energies. Load = import - export + PV + discharge - charge (DESIGN.md);
# coverage is the grid meter's, because without it the site's import is unknown.
_SITE_ROLLUP = """
WITH touched AS (
    SELECT DISTINCT d.site_pk, u.slot_start
    FROM unnest(%(devices)s::int[], %(slots)s::timestamptz[]) AS u(device_pk, slot_start)
    JOIN devices d ON d.id = u.device_pk
), flows AS (
    SELECT t.site_pk, t.slot_start,
        coalesce(sum(e.pos_kwh) FILTER (WHERE d.kind = 'meter'), 0) AS import_kwh,
        coalesce(sum(e.neg_kwh) FILTER (WHERE d.kind = 'meter'), 0) AS export_kwh,
        coalesce(sum(e.pos_kwh) FILTER (WHERE d.kind = 'pv'), 0) AS pv_kwh,
        coalesce(sum(e.neg_kwh) FILTER (WHERE d.kind = 'battery'), 0) AS charge_kwh,
        coalesce(sum(e.pos_kwh) FILTER (WHERE d.kind = 'battery'), 0) AS discharge_kwh,
        coalesce(sum(e.pos_kwh) FILTER (WHERE d.kind = 'ev_charger'), 0) AS ev_kwh,
        least(1.0, coalesce(max(e.covered_s) FILTER (WHERE d.kind = 'meter'), 0) / 1800.0) AS coverage
    FROM touched t
    JOIN devices d ON d.site_pk = t.site_pk
    JOIN device_energy_30min e ON e.device_pk = d.id AND e.slot_start = t.slot_start
    GROUP BY t.site_pk, t.slot_start
)
INSERT INTO site_energy_30min (site_pk, slot_start, import_kwh, export_kwh, pv_kwh, battery_charge_kwh,
                               battery_discharge_kwh, ev_kwh, load_kwh, coverage, updated_at)
SELECT site_pk, slot_start, import_kwh, export_kwh, pv_kwh, charge_kwh, discharge_kwh, ev_kwh,
       greatest(import_kwh - export_kwh + pv_kwh + discharge_kwh - charge_kwh, 0), coverage, now()
FROM flows ORDER BY site_pk, slot_start
ON CONFLICT (site_pk, slot_start) DO UPDATE SET
    import_kwh = EXCLUDED.import_kwh, export_kwh = EXCLUDED.export_kwh, pv_kwh = EXCLUDED.pv_kwh,
    battery_charge_kwh = EXCLUDED.battery_charge_kwh, battery_discharge_kwh = EXCLUDED.battery_discharge_kwh,
    ev_kwh = EXCLUDED.ev_kwh, load_kwh = EXCLUDED.load_kwh, coverage = EXCLUDED.coverage,
    updated_at = EXCLUDED.updated_at
"""


@dataclass(frozen=True)
class RollupResult:
    device_slots: int
    ran: bool


def run_rollup(
    conn: psycopg.Connection, *, max_gap_s: int = 900, limit: int = 5_000, delay_s: float = 0.0
) -> RollupResult:
    """Recompute up to `limit` device-slots dirty for at least `delay_s`, and their sites' rows. Commits."""
    locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
    conn.commit()
    if not locked or not locked[0]:
        return RollupResult(0, ran=False)
    try:
        claimed = conn.execute(_CLAIM, {"limit": limit, "delay": delay_s}).fetchall()
        conn.commit()
        if not claimed:
            return RollupResult(0, ran=True)
        devices = [c[0] for c in claimed]
        slots = [c[1] for c in claimed]
        try:
            touched = conn.execute(
                _DEVICE_ROLLUP,
                {"claimed_devices": devices, "claimed_slots": slots, "gap": max_gap_s},
            ).fetchall()
            if touched:
                conn.execute(_SITE_ROLLUP, {"devices": [t[0] for t in touched], "slots": [t[1] for t in touched]})
            conn.commit()
        except BaseException:
            if not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
                    conn.execute(_RECLAIM, (devices, slots))
                    conn.commit()
            raise
        return RollupResult(len(claimed), ran=True)
    finally:
        if not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
                conn.commit()
