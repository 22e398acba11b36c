"""The OpenADR MQTT notifier's queue (migration 0018): messages still to publish, as the API's loops
run them (SQLAlchemy async).

The webhook outbox's fan-out (`services.api.openadr.outbox`) inserts one row per (change, topic) in
the transaction that consumes the change, so a change is either queued for MQTT or still in
`openadr_changes`. The publisher leases due rows with FOR UPDATE SKIP LOCKED (several API processes
share the work), deletes a row once the broker acknowledged it and otherwise pushes it back: at
least once, never given up (a broker outage only delays).
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

__all__ = [
    "MqttMessage",
    "MqttStats",
    "NewMqttMessage",
    "VenClient",
    "claim_mqtt_messages",
    "insert_mqtt_messages",
    "mqtt_due_now",
    "mqtt_published",
    "mqtt_release",
    "mqtt_retry_later",
    "mqtt_stats",
    "ven_clients",
]


@dataclass(frozen=True, slots=True)
class NewMqttMessage:
    change_id: int
    topic: str
    message: dict[str, Any]
    change_at: datetime


@dataclass(frozen=True, slots=True)
class MqttMessage:
    id: int
    topic: str
    message: dict[str, Any]
    attempts: int  # including the one just claimed


@dataclass(frozen=True, slots=True)
class MqttStats:
    pending: int
    oldest_pending_age_s: float


@dataclass(frozen=True, slots=True)
class VenClient:
    client_id: str
    scopes: frozenset[str]
    ven_ids: tuple[str, ...]
    granted: frozenset[str]  # targets of its ven objects and their resources (`openadr.granted_targets`)


async def ven_clients(conn: AsyncConnection) -> list[VenClient]:
    """Every active VEN client that has a ven object: its scopes, ven IDs and granted targets, in one
    query (a change is fanned out to all of them, so not one query per VEN)."""
    rows = await conn.execute(
        text(
            """SELECT c.client_id, c.scopes, array_agg(v.id ORDER BY v.id),
                      ARRAY(SELECT unnest(v2.targets) FROM openadr_vens v2 WHERE v2.client_id = c.client_id
                            UNION SELECT unnest(r.targets) FROM openadr_resources r
                            JOIN openadr_vens v3 ON v3.id = r.ven_id WHERE v3.client_id = c.client_id)
               FROM openadr_clients c JOIN openadr_vens v ON v.client_id = c.client_id
               WHERE c.revoked_at IS NULL AND c.role = 'ven'
               GROUP BY c.client_id, c.scopes ORDER BY c.client_id"""
        )
    )
    return [VenClient(str(r[0]), frozenset(r[1]), tuple(r[2]), frozenset(r[3])) for r in rows]


async def insert_mqtt_messages(conn: AsyncConnection, messages: Sequence[NewMqttMessage]) -> None:
    if not messages:
        return
    statement = text(
        """INSERT INTO openadr_mqtt_messages (change_id, topic, message, change_at)
           VALUES (:change_id, :topic, :message, :change_at)"""
    ).bindparams(bindparam("message", type_=JSONB))
    await conn.execute(
        statement,
        [
            {"change_id": m.change_id, "topic": m.topic, "message": m.message, "change_at": m.change_at}
            for m in messages
        ],
    )


async def claim_mqtt_messages(conn: AsyncConnection, limit: int, lease_s: float) -> list[MqttMessage]:
    """Lease up to `limit` due messages (in change order) for `lease_s` and count the attempt."""
    rows = (
        await conn.execute(
            text(
                """UPDATE openadr_mqtt_messages m
                   SET attempts = attempts + 1, next_attempt_at = clock_timestamp() + make_interval(secs => :lease)
                   FROM (SELECT id FROM openadr_mqtt_messages WHERE next_attempt_at <= clock_timestamp()
                         ORDER BY change_id, id LIMIT :limit FOR UPDATE SKIP LOCKED) due
                   WHERE m.id = due.id
                   RETURNING m.id, m.topic, m.message, m.attempts, m.change_id"""
            ),
            {"limit": limit, "lease": lease_s},
        )
    ).all()
    rows = sorted(rows, key=lambda r: (r[4], r[0]))
    return [MqttMessage(r[0], r[1], json.loads(r[2]) if isinstance(r[2], str) else r[2], r[3]) for r in rows]


async def mqtt_published(conn: AsyncConnection, message_ids: Sequence[int]) -> None:
    await conn.execute(text("DELETE FROM openadr_mqtt_messages WHERE id = ANY(:ids)"), {"ids": list(message_ids)})


async def mqtt_retry_later(conn: AsyncConnection, message_id: int, delay_s: float, reason: str) -> None:
    await conn.execute(
        text(
            """UPDATE openadr_mqtt_messages SET last_error = :reason,
                   next_attempt_at = clock_timestamp() + make_interval(secs => :delay) WHERE id = :id"""
        ),
        {"id": message_id, "delay": delay_s, "reason": reason[:500]},
    )


async def mqtt_release(conn: AsyncConnection, message_ids: Sequence[int]) -> None:
    """Hand leased messages back unsent: due now, the claimed attempt not counted."""
    await conn.execute(
        text(
            """UPDATE openadr_mqtt_messages SET next_attempt_at = clock_timestamp(),
                   attempts = greatest(attempts - 1, 0) WHERE id = ANY(:ids)"""
        ),
        {"ids": list(message_ids)},
    )


async def mqtt_due_now(conn: AsyncConnection) -> None:
    """Make every message that failed before due at once (the broker is back), not after its back-off."""
    await conn.execute(
        text(
            """UPDATE openadr_mqtt_messages SET next_attempt_at = clock_timestamp()
               WHERE last_error IS NOT NULL AND next_attempt_at > clock_timestamp()"""
        )
    )


async def mqtt_stats(conn: AsyncConnection) -> MqttStats:
    row = (
        await conn.execute(
            text(
                """SELECT count(*), extract(epoch FROM clock_timestamp() - min(change_at))
                   FROM openadr_mqtt_messages"""
            )
        )
    ).one()
    return MqttStats(int(row[0]), max(float(row[1] or 0.0), 0.0))
