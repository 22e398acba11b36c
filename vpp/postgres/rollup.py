"""Keeps the 30-minute energy tables current from raw readings.

Ingest marks (device, slot) pairs dirty in the same transaction as the readings; this rollup
claims dirty pairs and recomputes them from the raw readings, so late and out-of-order data
correct the slot instead of being added on top. Energy per interval between consecutive readings:
the counter delta when both ends carry a counter (and it did not reset), otherwise the trapezoid
of power (power known at one end only is held over the interval: gateways may send power and
counters as separate readings). Intervals longer than the gap bound, and intervals with neither, are
not integrated (the slot's `coverage` shows it). An interval straddling a slot boundary is split pro rata.

A pair waits `delay_s` after it was first marked before it is recomputed: telemetry arrives every
few seconds, and recomputing an open slot after each report rewrote its rows several times a minute
for every device (row versions, WAL and vacuum work that competed with ingest itself). The table is
then current to within the delay instead of the rollup interval.

One rollup runs at a time (a session advisory lock): several ingest workers may call it, and whoever
holds the lock does the work. Dirty pairs are claimed in their own short transaction: ingest writers
insert into `energy_dirty` with ON CONFLICT, and a long computation holding deleted-but-uncommitted
claims would make every writer wait on it (the soak test saw ingest stall for minutes that way).

Crash safety: the claim moves pairs from `energy_dirty` into `energy_claims` (committed), and the
transaction that writes the recomputed rows deletes them from there. Whatever kills the computation
(an exception, SIGKILL of ingest, a PostgreSQL crash) leaves the claims in `energy_claims`, and the
next rollup to hold the lock takes them before any new dirty pair. Only the lock holder writes
claims, so a claim found by a new lock holder is always a leftover.

Physically impossible energy is not counted: an interval whose counter went backwards (a reset, or
two gateways interleaving one device's counters) or advanced by more than the device can deliver
in that time (its rating x `rated_power_factor`, plus a 1 kWh allowance for coarse counters) is
counted in `device_energy_30min.anomalies`, and every slot such an interval overlaps is integrated
from the trapezoid of its power readings (which ingest has checked against the rating), or is
nothing where there is no power. A meter without a rating is
bounded by its site: four times its contract demand or demand target plus the ratings of the site's
other devices; a device with neither by `max_power_kw`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psycopg

__all__ = ["RollupResult", "run_rollup"]

_LOCK_KEY = 0x5650_5030  # "VPP0"

_CLAIM = """
WITH taken AS (
    DELETE FROM energy_dirty
    WHERE (device_pk, slot_start) IN (
        SELECT device_pk, slot_start FROM energy_dirty
        WHERE dirty_since <= now() - %(delay)s * interval '1 second'
        ORDER BY device_pk, slot_start
        LIMIT greatest(%(limit)s - (SELECT count(*) FROM energy_claims), 0) FOR UPDATE SKIP LOCKED)
    RETURNING device_pk, slot_start
)
INSERT INTO energy_claims (device_pk, slot_start)
SELECT device_pk, slot_start FROM taken ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""
_CLAIMED = "SELECT device_pk, slot_start FROM energy_claims ORDER BY 1, 2 LIMIT %(limit)s"
_RELEASE = """
DELETE FROM energy_claims
WHERE (device_pk, slot_start) IN (SELECT * FROM unnest(%s::int[], %s::timestamptz[]))
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
), bounds AS (
    SELECT g.device_pk, coalesce(
        d.rated_power_kw * %(factor)s + 1,
        CASE WHEN d.kind = 'meter' THEN 4 * greatest(s.contract_demand_kw, s.demand_target_kw)
            + (SELECT coalesce(sum(o.rated_power_kw), 0) FROM devices o WHERE o.site_pk = d.site_pk AND o.id <> d.id)
        END,
        %(max_kw)s) AS max_kw
    FROM ranges g JOIN devices d ON d.id = g.device_pk JOIN sites s ON s.id = d.site_pk
), deltas AS (
    SELECT p.device_pk, p.p_ts AS t0, p.ts AS t1, extract(epoch FROM p.ts - p.p_ts)::float8 AS dt_s,
           p.power_kw, p.p_power, p.energy_pos_kwh - p.p_pos AS d_pos, p.energy_neg_kwh - p.p_neg AS d_neg,
           b.max_kw * extract(epoch FROM p.ts - p.p_ts)::float8 / 3600 + 1.0 AS cap_kwh
    FROM pts p JOIN bounds b USING (device_pk)
    WHERE p.p_ts IS NOT NULL AND p.ts - p.p_ts <= %(gap)s * interval '1 second'
), flagged AS (
    SELECT d.*, date_bin('30 minutes', d.t0, TIMESTAMPTZ '2000-01-01 00:00+00') AS s0,
           coalesce(d.d_pos < 0 OR d.d_pos > d.cap_kwh, false)
               OR coalesce(d.d_neg < 0 OR d.d_neg > d.cap_kwh, false) AS bad
    FROM deltas d
), placed AS (
    -- Power known at one end only (a gateway publishing power and counters as separate readings) is
    -- held over the interval; an interval with neither a usable counter nor any power adds no energy
    -- and no coverage, so `coverage` says which part of the slot the energy really stands for.
    SELECT device_pk, dt_s, s0, bad, d_pos, d_neg,
        CASE WHEN power_kw IS NOT NULL OR p_power IS NOT NULL
             THEN (coalesce(power_kw, p_power) + coalesce(p_power, power_kw)) / 2 END AS mean_kw,
        least(1.0, extract(epoch FROM s0 + interval '30 minutes' - t0)::float8 / dt_s) AS f0
    FROM flagged
), pieces AS (
    -- Each interval's share of each slot it overlaps (an interval straddling a boundary is split pro rata).
    SELECT device_pk, s0 AS slot_start, f0 AS frac, bad::int AS anomaly, bad, d_pos, d_neg, mean_kw, dt_s
    FROM placed
    UNION ALL
    SELECT device_pk, s0 + interval '30 minutes', 1 - f0, 0, bad, d_pos, d_neg, mean_kw, dt_s
    FROM placed WHERE f0 < 1
), intervals AS (
    -- A counter that misbehaved anywhere in a slot is trusted nowhere in it: two gateways interleaving
    -- one device's counters go back once per pair and forward by the offset between them, and each
    -- forward step alone can be small enough to pass the rating check. "In a slot" is every interval
    -- overlapping it, judged per slot piece: taking the slot of an interval's start instead let a reset
    -- in the previous slot distrust the next slot's share of a clean straddling interval, or not,
    -- depending on whether both slots happened to be recomputed together (only then did the rollup
    -- see the whole previous slot), so one slot's energy depended on which slots were dirty.
    SELECT *, bool_or(bad) OVER (PARTITION BY device_pk, slot_start) AS tainted FROM pieces
), split AS (
    SELECT device_pk, slot_start, anomaly,
        frac * CASE WHEN NOT tainted AND d_pos IS NOT NULL THEN d_pos
                    WHEN mean_kw IS NOT NULL THEN greatest(mean_kw, 0) * dt_s / 3600
                    ELSE 0 END AS pos,
        frac * CASE WHEN NOT tainted AND d_neg IS NOT NULL THEN d_neg
                    WHEN mean_kw IS NOT NULL THEN greatest(-mean_kw, 0) * dt_s / 3600
                    ELSE 0 END AS neg,
        frac * CASE WHEN (NOT tainted AND (d_pos IS NOT NULL OR d_neg IS NOT NULL)) OR mean_kw IS NOT NULL
                    THEN dt_s ELSE 0 END AS cov
    FROM intervals
), agg AS (
    SELECT s.device_pk, s.slot_start, sum(s.pos) AS pos, sum(s.neg) AS neg, sum(s.cov) AS cov,
           sum(s.anomaly)::int AS anomalies
    FROM split s JOIN claimed c USING (device_pk, slot_start)
    GROUP BY s.device_pk, s.slot_start
), seen AS (
    UPDATE devices d SET last_reading_at = m.last_ts
    FROM (SELECT device_pk, max(ts) AS last_ts FROM pts GROUP BY device_pk) m
    WHERE d.id = m.device_pk AND (d.last_reading_at IS NULL OR d.last_reading_at < m.last_ts)
)
INSERT INTO device_energy_30min (device_pk, slot_start, pos_kwh, neg_kwh, covered_s, anomalies)
SELECT device_pk, slot_start, pos, neg, cov, anomalies FROM agg
ON CONFLICT (device_pk, slot_start) DO UPDATE
SET pos_kwh = EXCLUDED.pos_kwh, neg_kwh = EXCLUDED.neg_kwh, covered_s = EXCLUDED.covered_s,
    anomalies = EXCLUDED.anomalies
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
    conn: psycopg.Connection,
    *,
    max_gap_s: int = 900,
    limit: int = 5_000,
    delay_s: float = 0.0,
    rated_power_factor: float = 1.5,
    max_power_kw: float = 100_000.0,
) -> RollupResult:
    """Recompute up to `limit` device-slots (leftover claims first, then pairs dirty for at least
    `delay_s`) and their sites' rows. Commits."""
    locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
    conn.commit()
    if not locked or not locked[0]:
        return RollupResult(0, ran=False)
    try:
        conn.execute(_CLAIM, {"limit": limit, "delay": delay_s})
        claimed = conn.execute(_CLAIMED, {"limit": limit}).fetchall()
        conn.commit()
        if not claimed:
            return RollupResult(0, ran=True)
        devices = [c[0] for c in claimed]
        slots = [c[1] for c in claimed]
        try:
            touched = conn.execute(
                _DEVICE_ROLLUP,
                {
                    "claimed_devices": devices,
                    "claimed_slots": slots,
                    "gap": max_gap_s,
                    "factor": rated_power_factor,
                    "max_kw": max_power_kw,
                },
            ).fetchall()
            if touched:
                conn.execute(_SITE_ROLLUP, {"devices": [t[0] for t in touched], "slots": [t[1] for t in touched]})
            conn.execute(_RELEASE, (devices, slots))
            conn.commit()
        except BaseException:
            # The claims stay in energy_claims (committed above): the next rollup takes them first.
            if not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            raise
        return RollupResult(len(claimed), ran=True)
    finally:
        if not conn.closed:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
                conn.commit()
