"""The operations dashboard's queries: region flows per slot, live device states, the peak programme's state,
stored demand alarms, dead-letter counts and the DR timeline. Each returns typed rows; the route turns them into kW and states.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from vpp.domain.dr_events import OWN_CONTROL_SOURCES, PEAK_PROGRAMME_SOURCE

__all__ = [
    "DeadLetterCount",
    "DeviceState",
    "FlowRow",
    "PeakProgrammeState",
    "StoredAlarm",
    "TimelineRow",
    "dead_letter_counts",
    "device_states",
    "peak_programme_states",
    "region_flow_rows",
    "stored_alarms",
    "timeline_rows",
]


class FlowRow(NamedTuple):
    """One slot of a region, energies summed over its member sites, kWh."""

    slot_start: datetime
    pv_on_site_kwh: float
    contract_renewable_kwh: float
    other_import_kwh: float
    battery_net_discharge_kwh: float
    export_kwh: float
    ev_kwh: float
    load_kwh: float
    sites: int


_FLOWS = text(
    """SELECT e.slot_start,
              sum(greatest(e.pv_kwh - e.export_kwh, 0)), sum(e.import_kwh * s.renewable_share),
              sum(e.import_kwh * (1 - s.renewable_share)), sum(e.battery_discharge_kwh - e.battery_charge_kwh),
              sum(e.export_kwh), sum(e.ev_kwh), sum(e.load_kwh), count(*)
       FROM site_energy_30min e JOIN sites s ON s.id = e.site_pk
       JOIN region_sites rs ON rs.site_pk = s.id
       WHERE rs.region_pk = :region_pk AND e.slot_start >= :start AND e.slot_start < :end
       GROUP BY e.slot_start ORDER BY e.slot_start"""
)


async def region_flow_rows(conn: AsyncConnection, region_pk: int, start: datetime, end: datetime) -> list[FlowRow]:
    rows = (await conn.execute(_FLOWS, {"region_pk": region_pk, "start": start, "end": end})).all()
    return [
        FlowRow(row[0], float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5]), float(row[6]),
                float(row[7]), int(row[8]))
        for row in rows
    ]  # fmt: skip


class DeviceState(NamedTuple):
    """A site with one of its devices and that device's last reading (device fields None without devices)."""

    site_id: str
    name: str
    is_public: bool
    demand_target_kw: float | None
    status_online: bool | None
    kind: str | None
    last_reading_at: datetime | None
    power_kw: float | None
    soc_pct: float | None
    vehicles: int | None
    slot_import_kwh: float


_SITES = text(
    """SELECT s.site_id, s.name, s.is_public, s.demand_target_kw, st.online, d.kind, d.last_reading_at,
              r.power_kw, r.soc_pct, r.vehicles, coalesce(e.import_kwh, 0)
       FROM sites s
       LEFT JOIN site_status st ON st.site_pk = s.id
       LEFT JOIN devices d ON d.site_pk = s.id
       LEFT JOIN readings r ON r.device_pk = d.id AND r.ts = d.last_reading_at
       LEFT JOIN site_energy_30min e ON e.site_pk = s.id AND e.slot_start = :slot
       WHERE CAST(:region AS text) IS NULL OR EXISTS (SELECT 1 FROM region_sites rs JOIN regions g
             ON g.id = rs.region_pk WHERE rs.site_pk = s.id AND g.region_id = :region)
       ORDER BY s.site_id, d.device_id"""
)


async def device_states(conn: AsyncConnection, slot: datetime, region_id: str | None) -> list[DeviceState]:
    """Every site (of a region, or all) with each device's last reading and the site's import so far in `slot`."""
    rows = (await conn.execute(_SITES, {"slot": slot, "region": region_id})).all()
    return [DeviceState(*row) for row in rows]


class PeakProgrammeState(NamedTuple):
    """An enrolled site: what the day's peak programme last did there today (state None: not looked at yet),
    and the limit of its event in effect now (None: none in effect)."""

    site_id: str
    state: str | None
    why: str | None
    reason: str | None
    checked_at: datetime | None
    limits_kw: list[float | None]
    limit_kw: float | None


_PEAK_PROGRAMME = text(
    """SELECT s.site_id, p.state, p.why, p.reason, p.checked_at, coalesce(p.limits_kw, '{}'), ev.import_limit_kw
       FROM sites s
       LEFT JOIN peak_programme_status p ON p.site_pk = s.id AND p.day = :day
       LEFT JOIN LATERAL (
           SELECT es.import_limit_kw FROM dr_event_sites es JOIN dr_events e ON e.id = es.event_pk
           WHERE es.site_pk = s.id AND e.source = :source AND e.status IN ('dispatched', 'acknowledged', 'active')
             AND e.start_at <= :now AND e.end_at > :now
           ORDER BY e.start_at DESC LIMIT 1) ev ON true
       WHERE s.peak_programme AND (CAST(:region AS text) IS NULL OR EXISTS (SELECT 1 FROM region_sites rs
             JOIN regions g ON g.id = rs.region_pk WHERE rs.site_pk = s.id AND g.region_id = :region))
       ORDER BY s.site_id"""
)


async def peak_programme_states(
    conn: AsyncConnection, day: date, now: datetime, region_id: str | None
) -> list[PeakProgrammeState]:
    """The enrolled sites (of a region, or all) and the peak programme's state at each on JST ``day``."""
    params = {"day": day, "now": now, "region": region_id, "source": PEAK_PROGRAMME_SOURCE}
    rows = (await conn.execute(_PEAK_PROGRAMME, params)).all()
    return [PeakProgrammeState(row[0], row[1], row[2], row[3], row[4], list(row[5]), row[6]) for row in rows]


class StoredAlarm(NamedTuple):
    site_id: str
    slot_start: datetime
    level: str
    predicted_kw: float
    target_kw: float
    raised_at: datetime


_STORED_ALARMS = text(
    """SELECT s.site_id, a.slot_start, a.level, a.predicted_kw, a.target_kw, a.raised_at
       FROM site_alarms a JOIN sites s ON s.id = a.site_pk
       WHERE a.slot_start >= :since ORDER BY a.slot_start DESC, s.site_id LIMIT 200"""
)


async def stored_alarms(conn: AsyncConnection, since: datetime) -> list[StoredAlarm]:
    """The scheduler's demand alarms for slots from `since`, newest first (at most 200)."""
    return [StoredAlarm(*row) for row in (await conn.execute(_STORED_ALARMS, {"since": since})).all()]


class DeadLetterCount(NamedTuple):
    reason: str
    since_hour_ago: int
    since_five_min_ago: int


_DEAD_LETTERS = text(
    """SELECT reason, count(*), count(*) FILTER (WHERE received_at >= :five_min_ago)
       FROM dead_letters WHERE received_at >= :hour_ago GROUP BY reason"""
)


async def dead_letter_counts(
    conn: AsyncConnection, hour_ago: datetime, five_min_ago: datetime
) -> list[DeadLetterCount]:
    rows = (await conn.execute(_DEAD_LETTERS, {"hour_ago": hour_ago, "five_min_ago": five_min_ago})).all()
    return [DeadLetterCount(str(row[0]), int(row[1]), int(row[2])) for row in rows]


class TimelineRow(NamedTuple):
    event_id: str
    kind: str
    status: str
    region_id: str | None
    start_at: datetime
    end_at: datetime
    requested_kw: float
    allocated_kw: float
    shortfall_kw: float
    incentive_jpy_per_kwh: float
    revision: int
    source: str
    pending_action: str | None
    updated_at: datetime
    sites: int
    dispatched_sites: int
    acked_sites: int
    verified_slots: int
    verified_reduction_kwh: float | None
    direction: str
    deliverable_kw: float | None
    unreachable_sites: int


_TIMELINE = text(
    """SELECT e.event_id, e.kind, e.status, e.region_id, e.start_at, e.end_at, e.requested_kw, e.allocated_kw,
              e.shortfall_kw, e.incentive_jpy_per_kwh, e.revision, e.source, e.pending_action, e.updated_at,
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id),
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id AND es.dispatched_at IS NOT NULL),
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id AND es.ack_status = 'accepted'
                  AND es.acked_revision = e.revision),
              coalesce(v.slots, 0), v.reduction_kwh, e.direction, e.deliverable_kw,
              (SELECT count(*) FROM dr_event_sites es WHERE es.event_pk = e.id AND es.limit_reachable IS FALSE)
       FROM dr_events e
       LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE reduction_kwh IS NOT NULL) AS slots,
                                 sum(reduction_kwh) AS reduction_kwh
                          FROM dr_verified_reductions WHERE event_pk = e.id) v ON true
       WHERE e.end_at >= :since AND e.start_at < :until
         AND (CAST(:own_control AS boolean) OR NOT (e.source = ANY(CAST(:own_sources AS text[]))))
       ORDER BY e.start_at DESC, e.id DESC LIMIT :limit"""
)


async def timeline_rows(
    conn: AsyncConnection, since: datetime, until: datetime, limit: int, own_control: bool = False
) -> list[TimelineRow]:
    """DR events overlapping [since, until), newest first, with dispatch, ack and verification counts; the sites'
    own demand control (:data:`OWN_CONTROL_SOURCES`) only with ``own_control``."""
    params = {"since": since, "until": until, "limit": limit, "own_control": own_control,
              "own_sources": list(OWN_CONTROL_SOURCES)}  # fmt: skip
    rows = (await conn.execute(_TIMELINE, params)).all()
    return [TimelineRow(*row) for row in rows]
