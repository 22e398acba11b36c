"""Stored objects to the spec's wire format: VTN-set metadata, clientID, RFC 3339 times with an offset."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from vpp.domain.openadr import hide_targets
from vpp.postgres.openadr import StoredObject

__all__ = ["rfc3339", "to_wire"]

# Objects whose wire form carries the clientID of the VEN they belong to (stamped from its token).
_WITH_CLIENT_ID = {"REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"}


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_wire(obj: StoredObject, *, granted: Collection[str] | None = None) -> dict[str, Any]:
    """The object as the spec's schema spells it.

    `granted`: the reading VEN's targets; program and event targets are then hidden down to those
    (target hiding). None for business logic, which sees every target.
    """
    out: dict[str, Any] = {
        "id": obj.id,
        "createdDateTime": rfc3339(obj.created_at),
        "modificationDateTime": rfc3339(obj.modified_at),
        "objectType": obj.kind.object_type,
    }
    out.update({k: v for k, v in obj.body.items() if k not in out})
    if obj.kind.object_type in _WITH_CLIENT_ID:
        out["clientID"] = obj.client_id
    if obj.kind.object_type in ("VEN", "RESOURCE", "SUBSCRIPTION", "PROGRAM", "EVENT") and obj.targets:
        out["targets"] = list(obj.targets)
    if granted is not None and obj.kind.object_type in ("PROGRAM", "EVENT"):
        hidden = hide_targets(obj.targets, granted)
        if hidden:
            out["targets"] = hidden
        else:
            out.pop("targets", None)
    return out
