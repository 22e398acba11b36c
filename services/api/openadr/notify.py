"""Who hears about a change: the subscriptions entitled to it, and the message each one gets.

A subscription hears about an object only if its own client could read it (the privacy rules of
`access`), restricted to its programID when it names one; the object it receives is the one that
client would read (targets hidden for a VEN). Entitlement is decided when the delivery loop fans
the change out (normally well under a second after the commit), from the subscriptions and grants
of that moment.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.openadr.access import TARGETED, ReadView
from services.api.openadr.wire import to_wire
from vpp.postgres.openadr import StoredObject, fetch_client, granted_targets, subscriptions_for
from vpp.postgres.openadr_outbox import Change, NewDelivery

__all__ = ["fan_out"]


def _program_of(obj: StoredObject) -> str | None:
    if obj.kind.object_type == "PROGRAM":
        return obj.id
    value = obj.columns.get("program_id")
    return str(value) if value is not None else None


async def _view_of(conn: AsyncConnection, client_id: str, obj: StoredObject) -> ReadView | None:
    client = await fetch_client(conn, client_id)
    if client is None:
        return None
    if "read_all" in client.scopes:
        return ReadView(all=True)
    if obj.kind.object_type in TARGETED:
        return ReadView(all=False, granted=frozenset(await granted_targets(conn, client_id)))
    return ReadView(all=False, client_id=client_id)


async def fan_out(conn: AsyncConnection, change: Change) -> list[NewDelivery]:
    """One delivery per callback of every subscription entitled to hear about `change`."""
    out: list[NewDelivery] = []
    obj, operation = change.obj, change.operation
    object_type = obj.kind.object_type
    for sub in await subscriptions_for(conn, object_type, operation):
        wanted_program = sub.columns.get("program_id")
        if wanted_program is not None and wanted_program != _program_of(obj):
            continue
        view = await _view_of(conn, sub.client_id, obj)
        if view is None or not view.sees(obj):
            continue
        message = {"objectType": object_type, "operation": operation, "object": to_wire(obj, granted=view.hide)}
        for entry in sub.body.get("objectOperations", ()):
            if object_type in entry.get("objects", ()) and operation in entry.get("operations", ()):
                out.append(
                    NewDelivery(
                        change.id, sub.id, entry["callbackUrl"], entry.get("bearerToken"), message, change.created_at
                    )
                )
    return out
