"""The OpenADR notification outbox's queries (SQLAlchemy async, as the API's delivery loop runs them).

Triggers (migration 0013) write one `openadr_changes` row per object insert, update or delete in
the writer's own transaction. The delivery loop turns changes into `openadr_deliveries` (one per
subscriber callback) and works those off. Both claims use FOR UPDATE SKIP LOCKED, so any number of
API processes can run the loop without handing the same row to two of them at once; a delivery
is leased (its `next_attempt_at` pushed past the HTTP timeout) before it is sent, so a process that
dies mid-delivery leaves it to be sent again: at least once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from vpp.postgres.openadr import KINDS, StoredObject

__all__ = [
    "Change",
    "Delivery",
    "NewDelivery",
    "OutboxStats",
    "claim_changes",
    "claim_deliveries",
    "delivered",
    "give_up",
    "insert_deliveries",
    "outbox_stats",
    "purge_ended_events",
    "release",
    "retry_later",
]


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    operation: str
    obj: StoredObject
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewDelivery:
    change_id: int
    subscription_id: str
    callback_url: str
    bearer_token: str | None
    message: dict[str, Any]
    change_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    callback_url: str
    bearer_token: str | None
    message: dict[str, Any]
    attempts: int  # including the one just claimed


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int  # changes not fanned out plus deliveries not yet made
    failed: int  # deliveries given up (dead letters)
    oldest_pending_age_s: float  # 0 when nothing is pending


def _json(value: Any) -> Any:
    # The driver may hand jsonb back decoded or as text.
    return json.loads(value) if isinstance(value, str) else value


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _snapshot_object(object_type: str, snapshot: dict[str, Any]) -> StoredObject:
    kind = KINDS[object_type]
    return StoredObject(
        kind,
        str(snapshot["id"]),
        str(snapshot["client_id"]),
        tuple(snapshot.get("targets") or ()),
        dict(snapshot["body"]),
        _time(snapshot["created_at"]),
        _time(snapshot["modified_at"]),
        {c: (_time(snapshot[c]) if c == "ends_at" and snapshot.get(c) else snapshot.get(c)) for c in kind.columns},
    )


async def claim_changes(conn: AsyncConnection, limit: int) -> list[Change]:
    """Take up to `limit` changes, oldest first, and delete them (the caller's transaction commits
    the deliveries it makes of them, or rolls both back)."""
    rows = (
        await conn.execute(
            text(
                """DELETE FROM openadr_changes WHERE id IN (
                       SELECT id FROM openadr_changes ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
                   RETURNING id, object_type, operation, snapshot, created_at"""
            ),
            {"limit": limit},
        )
    ).all()
    changes = [Change(row[0], row[2], _snapshot_object(row[1], _json(row[3])), row[4]) for row in rows]
    return sorted(changes, key=lambda c: c.id)


async def insert_deliveries(conn: AsyncConnection, deliveries: Sequence[NewDelivery]) -> None:
    if not deliveries:
        return
    statement = text(
        """INSERT INTO openadr_deliveries (change_id, subscription_id, callback_url, bearer_token, message, change_at)
           VALUES (:change_id, :subscription_id, :callback_url, :bearer_token, :message, :change_at)"""
    ).bindparams(bindparam("message", type_=JSONB))
    await conn.execute(
        statement,
        [
            {
                "change_id": d.change_id,
                "subscription_id": d.subscription_id,
                "callback_url": d.callback_url,
                "bearer_token": d.bearer_token,
                "message": d.message,
                "change_at": d.change_at,
            }
            for d in deliveries
        ],
    )


async def claim_deliveries(conn: AsyncConnection, limit: int, lease_s: float) -> list[Delivery]:
    """Lease up to `limit` due deliveries (in change order) for `lease_s` and count the attempt."""
    rows = (
        await conn.execute(
            text(
                """UPDATE openadr_deliveries d
                   SET attempts = attempts + 1, next_attempt_at = clock_timestamp() + make_interval(secs => :lease)
                   FROM (SELECT id FROM openadr_deliveries
                         WHERE failed_at IS NULL AND next_attempt_at <= clock_timestamp()
                           -- a subscription deleted since is not notified any more
                           AND EXISTS (SELECT 1 FROM openadr_subscriptions s WHERE s.id = subscription_id)
                         ORDER BY change_id, id LIMIT :limit FOR UPDATE SKIP LOCKED) due
                   WHERE d.id = due.id
                   RETURNING d.id, d.callback_url, d.bearer_token, d.message, d.attempts, d.change_id"""
            ),
            {"limit": limit, "lease": lease_s},
        )
    ).all()
    rows = sorted(rows, key=lambda r: (r[5], r[0]))
    return [Delivery(row[0], row[1], row[2], _json(row[3]), row[4]) for row in rows]


async def delivered(conn: AsyncConnection, delivery_id: int) -> None:
    await conn.execute(text("DELETE FROM openadr_deliveries WHERE id = :id"), {"id": delivery_id})


async def retry_later(conn: AsyncConnection, delivery_id: int, delay_s: float, reason: str) -> None:
    await conn.execute(
        text(
            """UPDATE openadr_deliveries SET last_error = :reason,
                   next_attempt_at = clock_timestamp() + make_interval(secs => :delay) WHERE id = :id"""
        ),
        {"id": delivery_id, "delay": delay_s, "reason": reason[:500]},
    )


async def give_up(conn: AsyncConnection, delivery_id: int, reason: str) -> None:
    await conn.execute(
        text("UPDATE openadr_deliveries SET failed_at = clock_timestamp(), last_error = :reason WHERE id = :id"),
        {"id": delivery_id, "reason": reason[:500]},
    )


async def release(conn: AsyncConnection, delivery_ids: Sequence[int]) -> None:
    """Hand leased deliveries back unsent: due now, the claimed attempt not counted."""
    await conn.execute(
        text(
            """UPDATE openadr_deliveries SET next_attempt_at = clock_timestamp(), attempts = greatest(attempts - 1, 0)
               WHERE id = ANY(:ids) AND failed_at IS NULL"""
        ),
        {"ids": list(delivery_ids)},
    )


async def outbox_stats(conn: AsyncConnection) -> OutboxStats:
    row = (
        await conn.execute(
            text(
                """SELECT
                     (SELECT count(*) FROM openadr_changes)
                       + (SELECT count(*) FROM openadr_deliveries WHERE failed_at IS NULL),
                     (SELECT count(*) FROM openadr_deliveries WHERE failed_at IS NOT NULL),
                     extract(epoch FROM clock_timestamp() - LEAST(
                         (SELECT min(created_at) FROM openadr_changes),
                         (SELECT min(change_at) FROM openadr_deliveries WHERE failed_at IS NULL)))"""
            )
        )
    ).one()
    return OutboxStats(int(row[0]), int(row[1]), max(float(row[2] or 0.0), 0.0))


async def purge_ended_events(conn: AsyncConnection, ended_before: datetime) -> int:
    """Delete events that ended before `ended_before` (their reports stay), and deliveries whose
    subscription is gone; return how many events."""
    await conn.execute(
        text(
            """DELETE FROM openadr_deliveries d
               WHERE NOT EXISTS (SELECT 1 FROM openadr_subscriptions s WHERE s.id = d.subscription_id)"""
        )
    )
    result = await conn.execute(text("DELETE FROM openadr_events WHERE ends_at < :before"), {"before": ended_before})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
