"""Site alarms: one row per site, slot and kind, raised by live demand control. Callers commit."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

__all__ = ["store_demand_alarm"]


def store_demand_alarm(
    conn: psycopg.Connection, site_pk: int, slot: datetime, now: datetime, level: str, predicted_kw: float,
    target_kw: float, detail: dict[str, object],
) -> bool:  # fmt: skip
    """Insert the slot's demand alarm (or raise a warn to over); True when it is new or escalated.

    A slot keeps one alarm: a repeated "warn", or an "over" already stored, changes nothing and returns False,
    so the caller raises (and signals) each alarm once per slot.
    """
    row = conn.execute(
        """INSERT INTO site_alarms (site_pk, slot_start, raised_at, kind, level, predicted_kw, target_kw, detail)
           VALUES (%s, %s, %s, 'demand', %s, %s, %s, %s)
           ON CONFLICT (site_pk, slot_start, kind) DO UPDATE
             SET level = EXCLUDED.level, predicted_kw = EXCLUDED.predicted_kw, raised_at = EXCLUDED.raised_at,
                 detail = EXCLUDED.detail
             WHERE site_alarms.level = 'warn' AND EXCLUDED.level = 'over'
           RETURNING id""",
        (site_pk, slot, now, level, predicted_kw, target_kw, Jsonb(detail)),
    ).fetchone()
    return row is not None
