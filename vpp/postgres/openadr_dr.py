"""The scheduler's DR events as OpenADR events, and VENs' USAGE reports back for verification.

`publish_dr_event` is the adapter the scheduler calls after it plans, re-plans or cancels a DR
event: one OpenADR event per called site, targeted at that site (``site:<site_id>``), in the
program `DR_PROGRAM_NAME`; a re-plan updates the same OpenADR events, a cancellation deletes them.
`reported_usage_kwh` gives verification what the site's VEN reported per slot.

The plausibility guard applies here as on the MQTT path (`vpp.domain.limit_plausibility`): an import
limit the site could never mean is not written into an OpenADR event. The site's earlier OpenADR event
of this DR event, if any, stays as it was (as the MQTT path leaves the retained signal), and the
refusal is logged as an error and written into the event's audit trail with its reason.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from vpp.domain.limit_plausibility import implausible_limit
from vpp.domain.openadr import DR_PROGRAM_NAME, SiteCall, dr_event_body, event_end, site_target, usage_by_slot
from vpp.domain.slots import JST, SLOT, SLOTS_PER_DAY
from vpp.postgres.dr_events import DrEventRow, EventSiteRow, add_audit, event_sites, get_event
from vpp.postgres.site_capacity import site_capacity

__all__ = ["dr_program_id", "publish_dr_event", "reported_usage_day", "reported_usage_kwh"]

_VTN_CLIENT = "vpp-dr-scheduler"  # recorded as the creator of the objects the scheduler publishes
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")
_KWH_PER_UNIT = {"KWH": 1.0, "WH": 0.001, "MWH": 1000.0}

log = logging.getLogger("vpp.openadr")


def dr_program_id(conn: psycopg.Connection, now: datetime) -> str:
    """The ID of the OpenADR program the scheduler's events belong to, created on first use."""
    body = {"programName": DR_PROGRAM_NAME, "payloadDescriptors": [
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"},
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "DISPATCH_SETPOINT", "units": "KW"},
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"},
        {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "KWH"},
    ]}  # fmt: skip
    conn.execute(
        """INSERT INTO openadr_programs (id, program_name, client_id, body, created_at, modified_at)
           VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (program_name) DO NOTHING""",
        (f"program-{uuid.uuid4().hex[:20]}", DR_PROGRAM_NAME, _VTN_CLIENT, Jsonb(body), now, now),
    )
    row = conn.execute("SELECT id FROM openadr_programs WHERE program_name = %s", (DR_PROGRAM_NAME,)).fetchone()
    assert row is not None
    return str(row[0])


def _event_object_id(event_id: str, site_id: str) -> str:
    return f"dr-{_UNSAFE.sub('-', event_id)}-{_UNSAFE.sub('-', site_id)}"[:128]


def publish_dr_event(
    conn: psycopg.Connection,
    event_id: str,
    now: datetime,
    *,
    on_refused: Callable[[str, str], None] = lambda _site_id, _reason: None,
) -> list[str]:
    """Create, update or remove the OpenADR events of one scheduler DR event; return their IDs. Caller commits.

    A site whose import limit is implausible gets no new OpenADR event (see the module's docstring);
    `on_refused(site_id, reason)` lets the scheduler count it in its alarm metric."""
    event = get_event(conn, event_id)
    if event is None:
        raise LookupError(f"no DR event {event_id!r}")
    if event.status in ("cancelled",):
        conn.execute("DELETE FROM openadr_events WHERE dr_event_pk = %s", (event.pk,))
        return []
    program_id = dr_program_id(conn, now)
    published: list[str] = []
    sites = event_sites(conn, event.pk)
    for site in sites:
        floors = tuple(site.import_floor_kw) if site.import_floor_kw else None
        call = SiteCall(event.event_id, event.kind, site.site_id, event.start_at, event.end_at,
                        site.import_limit_kw, site.allocated_kw, event.revision, floors)  # fmt: skip
        body = dr_event_body(call, program_id)
        if _limit_refused(conn, event, site, body, now, on_refused):
            continue
        row = conn.execute(
            """INSERT INTO openadr_events (id, program_id, client_id, targets, body, created_at, modified_at, ends_at,
                                           dr_event_pk, site_pk)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (dr_event_pk, site_pk) DO UPDATE SET
                   body = EXCLUDED.body, targets = EXCLUDED.targets, modified_at = EXCLUDED.modified_at,
                   ends_at = EXCLUDED.ends_at
               RETURNING id""",
            (_event_object_id(event.event_id, site.site_id), program_id, _VTN_CLIENT, [site_target(site.site_id)],
             Jsonb({k: v for k, v in body.items() if k != "targets"}), now, now, event_end(body), event.pk,
             site.site_pk),
        ).fetchone()  # fmt: skip
        assert row is not None
        published.append(str(row[0]))
    conn.execute(
        "DELETE FROM openadr_events WHERE dr_event_pk = %s AND NOT site_pk = ANY(%s)",
        (event.pk, [s.site_pk for s in sites]),
    )
    return published


def _limit_refused(
    conn: psycopg.Connection,
    event: DrEventRow,
    site: EventSiteRow,
    body: dict[str, Any],
    now: datetime,
    on_refused: Callable[[str, str], None],
) -> bool:
    """The MQTT path's guard (`Scheduler._refused`), on the limits this OpenADR event would carry."""
    limits = [
        float(value)
        for interval in body["intervals"]
        for payload in interval["payloads"]
        if payload["type"] == "IMPORT_CAPACITY_LIMIT"
        for value in payload["values"]
    ]
    if not limits:
        return False
    why = implausible_limit(max(limits), site_capacity(conn, site.site_pk, now))
    if why is None:
        return False
    log.error(
        "refused to publish an implausible import limit as an OpenADR event",
        extra={"event_id": event.event_id, "site_id": site.site_id, "reason": why},
    )
    add_audit(conn, event.pk, now, "scheduler", "limit_refused", event.status, event.status,
              {"site_pk": site.site_pk, "reason": why, "channel": "openadr"})  # fmt: skip
    on_refused(site.site_id, why)
    return True


def _kwh_per_unit(report_body: dict[str, Any]) -> float:
    for descriptor in report_body.get("payloadDescriptors") or ():
        if descriptor.get("payloadType") == "USAGE" and descriptor.get("units"):
            unit = str(descriptor["units"]).upper()
            if unit not in _KWH_PER_UNIT:
                raise ValueError(f"USAGE reported in unknown units {unit!r}")
            return _KWH_PER_UNIT[unit]
    return 1.0  # the event asked for KWH


def reported_usage_kwh(conn: psycopg.Connection, dr_event_pk: int, site_pk: int) -> dict[datetime, float]:
    """kWh per slot start (UTC) the site's VEN reported for its OpenADR event of this DR event.

    When a VEN reports a slot more than once, its latest report (by modification time) counts.
    """
    rows = conn.execute(
        """SELECT r.body FROM openadr_reports r JOIN openadr_events e ON e.id = r.event_id
           WHERE e.dr_event_pk = %s AND e.site_pk = %s ORDER BY r.modified_at, r.id""",
        (dr_event_pk, site_pk),
    ).fetchall()
    out: dict[datetime, float] = {}
    for (body,) in rows:
        try:
            out.update(usage_by_slot(body.get("resources") or (), _kwh_per_unit(body)))
        except ValueError:
            continue  # a report verification cannot use; the metered data still counts
    return out


def reported_usage_day(conn: psycopg.Connection, dr_event_pk: int, site_pk: int, day: date) -> list[float | None]:
    """The reported USAGE as 48 JST slot values of `day` (None where nothing was reported)."""
    values: list[float | None] = [None] * SLOTS_PER_DAY
    midnight = datetime.combine(day, datetime.min.time(), JST)
    for start, kwh in reported_usage_kwh(conn, dr_event_pk, site_pk).items():
        index = (start - midnight) // SLOT
        if 0 <= index < SLOTS_PER_DAY:
            values[index] = kwh
    return values
