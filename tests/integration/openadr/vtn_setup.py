"""Set-up shared by the privacy, DR and outbox tests: ven objects granting each VEN its site, and DR
events published as the scheduler publishes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from tests.integration.openadr.conftest import bearer
from vpp.postgres.dr_events import create_event, get_event, set_event_sites
from vpp.postgres.openadr_dr import publish_dr_event


def grant_sites(vtn: httpx.Client, bl_token: str) -> dict[str, dict[str, Any]]:
    """One ven per VEN client, targeted at its site (``site:<site_id>``); returns them by client ID."""
    out = {}
    for client_id, site_id in (("ven-depot-a", "depot-a"), ("ven-office-b", "office-b")):
        body = {
            "objectType": "BL_VEN_REQUEST",
            "venName": f"ven-{site_id}",
            "clientID": client_id,
            "targets": [f"site:{site_id}"],
        }
        response = vtn.post("/vens", json=body, headers=bearer(bl_token))
        assert response.status_code == 201, response.text
        out[client_id] = response.json()
    return out


def scheduler_event(
    db_url: str, kind: str, event_id: str, limits: dict[str, float | None], start: datetime, *, revision: int = 1
) -> int:
    """Plan (or re-plan, `revision` > 1) a DR event over `limits`' sites and publish it as the scheduler
    does (`publish_dr_event` in the planner's transaction); returns the DR event's pk."""
    now = datetime.now(UTC)
    with psycopg.connect(db_url) as conn:
        existing = get_event(conn, event_id)
        if existing is None:
            pk = create_event(
                conn, event_id=event_id, kind=kind, start_at=start, end_at=start + timedelta(hours=1),
                requested_kw=30.0, incentive_jpy_per_kwh=20.0, region_id=None, source="operator", actor="test", now=now,
            ).pk  # fmt: skip
        else:
            pk = existing.pk
            conn.execute("UPDATE dr_events SET revision = %s WHERE id = %s", (revision, pk))
        site_pks = {row[0]: row[1] for row in conn.execute("SELECT site_id, id FROM sites").fetchall()}
        rows = [(site_pks[site], 15.0, limit, None) for site, limit in limits.items()]
        set_event_sites(conn, pk, rows, allocated_kw=15.0 * len(rows), shortfall_kw=0.0)
        publish_dr_event(conn, event_id, now)
        conn.commit()
    return pk


def cancel_scheduler_event(db_url: str, event_id: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE dr_events SET status = 'cancelled' WHERE event_id = %s", (event_id,))
        assert publish_dr_event(conn, event_id, datetime.now(UTC)) == []
        conn.commit()
