"""Notifications to subscribers after an object is created, updated or deleted.

A subscription hears about an object only if its own client could read it (the privacy rules of
`access`), restricted to its programID when it names one; the object it receives is the one that
client would read (targets hidden for a VEN).
"""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.openadr.access import TARGETED, ReadView
from services.api.openadr.webhooks import WebhookDeliverer
from services.api.openadr.wire import to_wire
from vpp.postgres.openadr import StoredObject, fetch_client, granted_targets, subscriptions_for

__all__ = ["deliverer_of", "notify"]


def deliverer_of(app: FastAPI) -> WebhookDeliverer:
    """The app's webhook deliverer, made on first use (the app may also set `openadr_webhooks` itself)."""
    deliverer: WebhookDeliverer | None = getattr(app.state, "openadr_webhooks", None)
    if deliverer is None:
        deliverer = WebhookDeliverer()
        app.state.openadr_webhooks = deliverer
    return deliverer


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


async def notify(conn: AsyncConnection, deliverer: WebhookDeliverer, obj: StoredObject, operation: str) -> int:
    """Queue a notification to every subscriber entitled to it; return how many were queued."""
    queued = 0
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
                deliverer.submit(entry["callbackUrl"], message, entry.get("bearerToken"))
                queued += 1
    return queued
