"""The OpenADR VTN's queries (SQLAlchemy async, as the API runs them): one set for all six object kinds.

Every object kind is a table with the same core columns (id, client_id, targets, body, created_at,
modified_at) plus the columns it is filtered or joined on (`Kind.columns`). Table and column names
come only from the `KINDS` constants below, never from a request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import Text

__all__ = [
    "KINDS",
    "ClientRecord",
    "Kind",
    "StoredObject",
    "delete_object",
    "fetch_client",
    "fetch_object",
    "granted_targets",
    "insert_object",
    "replace_object",
    "search_objects",
    "subscriptions_for",
]


@dataclass(frozen=True, slots=True)
class Kind:
    object_type: str  # the spec's objectTypes value
    table: str
    columns: tuple[str, ...] = ()  # filterable columns besides the core ones


KINDS: dict[str, Kind] = {
    "PROGRAM": Kind("PROGRAM", "openadr_programs", ("program_name",)),
    "EVENT": Kind("EVENT", "openadr_events", ("program_id", "ends_at")),
    "REPORT": Kind("REPORT", "openadr_reports", ("event_id", "program_id", "client_name")),
    "SUBSCRIPTION": Kind("SUBSCRIPTION", "openadr_subscriptions", ("program_id", "client_name")),
    "VEN": Kind("VEN", "openadr_vens", ("ven_name",)),
    "RESOURCE": Kind("RESOURCE", "openadr_resources", ("ven_id", "resource_name")),
}


@dataclass(frozen=True, slots=True)
class StoredObject:
    kind: Kind
    id: str
    client_id: str
    targets: tuple[str, ...]
    body: dict[str, Any]
    created_at: datetime
    modified_at: datetime
    columns: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    secret_hash: str
    role: str
    scopes: tuple[str, ...]


def _select(kind: Kind) -> str:
    extra = "".join(f", {c}" for c in kind.columns)
    return f"SELECT id, client_id, targets, body, created_at, modified_at{extra} FROM {kind.table}"


def _stored(kind: Kind, row: Sequence[Any]) -> StoredObject:
    body = row[3] if isinstance(row[3], dict) else json.loads(row[3])
    extras = dict(zip(kind.columns, row[6:], strict=True))
    return StoredObject(kind, row[0], row[1], tuple(row[2] or ()), body, row[4], row[5], extras)


def _params(kind: Kind, values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(kind.columns)
    if unknown:
        raise ValueError(f"{kind.table} has no columns {sorted(unknown)}")
    return {c: values.get(c) for c in kind.columns}


_TYPES = (bindparam("targets", type_=ARRAY(Text)), bindparam("body", type_=JSONB))


async def insert_object(
    conn: AsyncConnection,
    kind: Kind,
    *,
    object_id: str,
    client_id: str,
    targets: Sequence[str],
    body: Mapping[str, Any],
    now: datetime,
    columns: Mapping[str, Any],
) -> StoredObject:
    names = ", ".join(kind.columns)
    values = ", ".join(f":{c}" for c in kind.columns)
    sep = ", " if kind.columns else ""
    statement = text(
        f"""INSERT INTO {kind.table} (id, client_id, targets, body, created_at, modified_at{sep}{names})
            VALUES (:id, :client_id, :targets, :body, :now, :now{sep}{values})
            RETURNING id, client_id, targets, body, created_at, modified_at{sep}{names}"""
    ).bindparams(*_TYPES)
    params = {"id": object_id, "client_id": client_id, "targets": list(targets), "body": dict(body), "now": now}
    row = (await conn.execute(statement, {**params, **_params(kind, columns)})).one()
    return _stored(kind, row)


async def replace_object(
    conn: AsyncConnection,
    kind: Kind,
    object_id: str,
    *,
    targets: Sequence[str],
    body: Mapping[str, Any],
    now: datetime,
    columns: Mapping[str, Any],
) -> StoredObject | None:
    sets = "".join(f", {c} = :{c}" for c in kind.columns)
    statement = text(
        f"""UPDATE {kind.table} SET targets = :targets, body = :body, modified_at = :now{sets}
            WHERE id = :id RETURNING id, client_id, targets, body, created_at, modified_at
            {"".join(f", {c}" for c in kind.columns)}"""
    ).bindparams(*_TYPES)
    params = {"id": object_id, "targets": list(targets), "body": dict(body), "now": now}
    row = (await conn.execute(statement, {**params, **_params(kind, columns)})).first()
    return _stored(kind, row) if row else None


async def fetch_object(conn: AsyncConnection, kind: Kind, object_id: str) -> StoredObject | None:
    row = (await conn.execute(text(f"{_select(kind)} WHERE id = :id"), {"id": object_id})).first()
    return _stored(kind, row) if row else None


async def delete_object(conn: AsyncConnection, kind: Kind, object_id: str) -> StoredObject | None:
    found = await fetch_object(conn, kind, object_id)
    if found is not None:
        await conn.execute(text(f"DELETE FROM {kind.table} WHERE id = :id"), {"id": object_id})
    return found


async def search_objects(
    conn: AsyncConnection,
    kind: Kind,
    *,
    equal: Mapping[str, Any] | None = None,
    all_targets: Sequence[str] | None = None,
    visible_targets: Sequence[str] | None = None,
    client_id: str | None = None,
    active_at: datetime | None = None,
    current_first_at: datetime | None = None,
    subscribed_to: Sequence[str] | None = None,
    skip: int = 0,
    limit: int = 50,
) -> list[StoredObject]:
    """Objects matching every filter given, oldest first (with `current_first_at`: events not ended by
    then first, oldest first, then the ended ones).

    `all_targets`: the object has every one of these targets (a query's ``targets``; Definition.md,
    "the request targets ... match with the object's targets"). `visible_targets`:
    the object has no targets or one of these (a VEN's granted targets). `client_id`: created by
    or assigned to that client. `active_at`: (events) not ended by then. `subscribed_to`:
    (subscriptions) naming one of these object types.
    """
    where = ["true"]
    params: dict[str, Any] = {"skip": skip, "limit": limit}
    for column, value in _params(kind, equal or {}).items():
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if all_targets is not None:
        where.append("targets @> CAST(:all_targets AS text[])")
        params["all_targets"] = list(all_targets)
    if visible_targets is not None:
        where.append("(cardinality(targets) = 0 OR targets && CAST(:visible AS text[]))")
        params["visible"] = list(visible_targets)
    if client_id is not None:
        where.append("client_id = :client_id")
        params["client_id"] = client_id
    if active_at is not None:
        if "ends_at" not in kind.columns:
            raise ValueError(f"{kind.table} objects do not end")
        where.append("(ends_at IS NULL OR ends_at > :active_at)")
        params["active_at"] = active_at
    if subscribed_to is not None:
        where.append(
            """EXISTS (SELECT 1 FROM jsonb_array_elements(body -> 'objectOperations') op
                       WHERE op -> 'objects' ?| CAST(:subscribed_to AS text[]))"""
        )
        params["subscribed_to"] = list(subscribed_to)
    order = "created_at, id"
    if current_first_at is not None:
        if "ends_at" not in kind.columns:
            raise ValueError(f"{kind.table} objects do not end")
        order = "(ends_at IS NOT NULL AND ends_at <= :current_first_at), created_at, id"
        params["current_first_at"] = current_first_at
    statement = text(f"{_select(kind)} WHERE {' AND '.join(where)} ORDER BY {order} OFFSET :skip LIMIT :limit")
    return [_stored(kind, row) for row in (await conn.execute(statement, params)).all()]


async def granted_targets(conn: AsyncConnection, client_id: str) -> set[str]:
    """Targets business logic granted a VEN client: those of its ven objects and their resources."""
    rows = await conn.execute(
        text(
            """SELECT unnest(targets) FROM openadr_vens WHERE client_id = :c
               UNION SELECT unnest(r.targets) FROM openadr_resources r
               JOIN openadr_vens v ON v.id = r.ven_id WHERE v.client_id = :c"""
        ),
        {"c": client_id},
    )
    return {str(row[0]) for row in rows}


async def fetch_client(conn: AsyncConnection, client_id: str) -> ClientRecord | None:
    row = (
        await conn.execute(
            text(
                """SELECT client_id, secret_hash, role, scopes FROM openadr_clients
                   WHERE client_id = :c AND revoked_at IS NULL"""
            ),
            {"c": client_id},
        )
    ).first()
    return ClientRecord(row[0], row[1], row[2], tuple(row[3])) if row else None


async def subscriptions_for(conn: AsyncConnection, object_type: str, operation: str) -> list[StoredObject]:
    """Subscriptions with an objectOperations entry naming this object type and operation."""
    kind = KINDS["SUBSCRIPTION"]
    statement = text(
        f"""{_select(kind)} WHERE EXISTS (
                SELECT 1 FROM jsonb_array_elements(body -> 'objectOperations') op
                WHERE op -> 'objects' ? :object_type AND op -> 'operations' ? :operation)
            ORDER BY created_at, id"""
    )
    rows = (await conn.execute(statement, {"object_type": object_type, "operation": operation})).all()
    return [_stored(kind, row) for row in rows]
