"""Who may read and write which OpenADR objects (Definition.md, "Object Privacy" and the scope table).

Business logic (a token with ``read_all``) reads everything. A VEN reads programs and events that
carry no targets or a target granted to it (through its ven and resource objects), with targets
it was not granted hidden, and reads only the reports, subscriptions, vens and resources that
belong to its own clientID. Writes to those four kinds by a VEN touch only its own objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.openadr.problems import OpenAdrError
from services.api.openadr.security import Caller, require
from vpp.domain.openadr import visible_to_ven
from vpp.postgres.openadr import KINDS, Kind, StoredObject, fetch_object, granted_targets

__all__ = ["READ_SCOPES", "WRITE_SCOPES", "ReadView", "owned_or_404", "read_view", "visible_or_404"]

TARGETED = {"PROGRAM", "EVENT"}
READ_SCOPES = {k: ("read_all", "read_targets" if k in TARGETED else "read_ven_objects") for k in KINDS}
WRITE_SCOPES = {
    "PROGRAM": "write_programs",
    "EVENT": "write_events",
    "REPORT": "write_reports",
    "SUBSCRIPTION": "write_subscriptions",
    "VEN": "write_vens",
    "RESOURCE": "write_vens",
}


@dataclass(frozen=True, slots=True)
class ReadView:
    """How one caller sees one kind: everything, or through its granted targets or its clientID."""

    all: bool
    granted: frozenset[str] | None = None  # targeted kinds, VEN callers
    client_id: str | None = None  # VEN-owned kinds, VEN callers

    def sees(self, obj: StoredObject) -> bool:
        if self.all:
            return True
        if self.granted is not None:
            return visible_to_ven(obj.targets, self.granted)
        return obj.client_id == self.client_id

    @property
    def hide(self) -> frozenset[str] | None:
        return None if self.all else self.granted


async def read_view(conn: AsyncConnection, caller: Caller, kind: Kind) -> ReadView:
    scope = require(caller, *READ_SCOPES[kind.object_type])
    if scope == "read_all":
        return ReadView(all=True)
    if kind.object_type in TARGETED:
        return ReadView(all=False, granted=frozenset(await granted_targets(conn, caller.client_id)))
    return ReadView(all=False, client_id=caller.client_id)


async def visible_or_404(
    conn: AsyncConnection, caller: Caller, kind: Kind, object_id: str
) -> tuple[StoredObject, ReadView]:
    view = await read_view(conn, caller, kind)
    obj = await fetch_object(conn, kind, object_id)
    # Someone else's object answers exactly like a missing one: its existence is private too.
    if obj is None or not view.sees(obj):
        raise OpenAdrError(404, f"no {kind.object_type.lower()} {object_id!r}")
    return obj, view


async def owned_or_404(conn: AsyncConnection, caller: Caller, kind: Kind, object_id: str) -> StoredObject:
    """The object a write targets: business logic may write any; a VEN only its own."""
    require(caller, WRITE_SCOPES[kind.object_type])
    obj = await fetch_object(conn, kind, object_id)
    if obj is None or not (caller.is_bl or kind.object_type in TARGETED or obj.client_id == caller.client_id):
        raise OpenAdrError(404, f"no {kind.object_type.lower()} {object_id!r}")
    return obj
