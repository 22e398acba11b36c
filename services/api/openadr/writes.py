"""From a request body to what is stored: validation against the spec's request schema, the
VTN-stamped clientID, the targets column, the parent columns, and the cross-object checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.openadr import schemas
from services.api.openadr.access import TARGETED, read_view
from services.api.openadr.problems import OpenAdrError, pydantic_problem
from services.api.openadr.security import Caller
from vpp.domain.openadr import event_end
from vpp.domain.openadr_payloads import payload_problems
from vpp.postgres.openadr import KINDS, StoredObject, fetch_object

__all__ = ["Prepared", "prepare"]

_MODELS: dict[str, type[BaseModel]] = {
    "PROGRAM": schemas.ProgramRequest,
    "EVENT": schemas.EventRequest,
    "REPORT": schemas.ReportRequest,
    "SUBSCRIPTION": schemas.SubscriptionRequest,
    "VEN": schemas.VenRequest,
    "RESOURCE": schemas.ResourceRequest,
}
# Kept in columns (or implied by the kind), not in the stored body.
_NOT_IN_BODY = {"targets", "objectType", "clientID", "id", "createdDateTime", "modificationDateTime"}


@dataclass(frozen=True, slots=True)
class Prepared:
    client_id: str
    targets: list[str]
    body: dict[str, Any]
    columns: dict[str, Any]


def _validate(object_type: str, payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise OpenAdrError(400, "the body must be a JSON object")
    try:
        model = _MODELS[object_type].model_validate(payload)
    except ValidationError as exc:
        raise pydantic_problem(exc) from None
    data = model.model_dump(mode="json", exclude_none=True)
    problems = payload_problems(object_type, data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise OpenAdrError(400, problems[0] + more)
    return data


def _no_targets_from_ven(caller: Caller, data: dict[str, Any], object_type: str) -> None:
    # Definition.md: only BL may write targets to ven and resource objects (they grant access).
    if not caller.is_bl and data.get("targets"):
        raise OpenAdrError(403, f"only business logic may set the targets of a {object_type.lower()}")


async def prepare(
    conn: AsyncConnection, caller: Caller, object_type: str, payload: Any, existing: StoredObject | None
) -> Prepared:
    """What to store for a create (`existing` None) or an update of `existing`."""
    data = _validate(object_type, payload)
    body = {k: v for k, v in data.items() if k not in _NOT_IN_BODY}
    targets = list(data.get("targets") or [])
    client_id = existing.client_id if existing is not None else caller.client_id
    columns: dict[str, Any] = {}
    if object_type == "PROGRAM":
        columns = {"program_name": data["programName"]}
    elif object_type == "EVENT":
        if await fetch_object(conn, KINDS["PROGRAM"], data["programID"]) is None:
            raise OpenAdrError(400, f"programID {data['programID']!r} names no program")
        columns = {"program_id": data["programID"], "ends_at": event_end(data)}
    elif object_type == "REPORT":
        event = await fetch_object(conn, KINDS["EVENT"], data["eventID"])
        view = await read_view(conn, caller, KINDS["EVENT"]) if event is not None else None
        if event is None or view is None or not view.sees(event):
            raise OpenAdrError(400, f"eventID {data['eventID']!r} names no event this client can see")
        targets = []
        columns = {"event_id": event.id, "program_id": event.columns["program_id"], "client_name": data["clientName"]}
    elif object_type == "SUBSCRIPTION":
        program_id = data.get("programID")
        if program_id is not None and await fetch_object(conn, KINDS["PROGRAM"], program_id) is None:
            raise OpenAdrError(400, f"programID {program_id!r} names no program")
        columns = {"program_id": program_id, "client_name": data["clientName"]}
    elif object_type == "VEN":
        client_id, targets = _ven_owner(caller, data, existing)
        columns = {"ven_name": data["venName"]}
    elif object_type == "RESOURCE":
        ven = await fetch_object(conn, KINDS["VEN"], data["venID"])
        if ven is None or not (caller.is_bl or ven.client_id == caller.client_id):
            raise OpenAdrError(400, f"venID {data['venID']!r} names no ven of this client")
        _no_targets_from_ven(caller, data, object_type)
        client_id = ven.client_id
        if not caller.is_bl and existing is not None:
            targets = list(existing.targets)
        columns = {"ven_id": ven.id, "resource_name": data["resourceName"]}
    if object_type in TARGETED or object_type == "SUBSCRIPTION":
        targets = list(data.get("targets") or [])
    return Prepared(client_id, targets, body, columns)


def _ven_owner(caller: Caller, data: dict[str, Any], existing: StoredObject | None) -> tuple[str, list[str]]:
    if caller.is_bl:
        if data["objectType"] != "BL_VEN_REQUEST" or not data.get("clientID"):
            raise OpenAdrError(400, "business logic creates vens with objectType BL_VEN_REQUEST and a clientID")
        return data["clientID"], list(data.get("targets") or [])
    _no_targets_from_ven(caller, data, "VEN")
    if data.get("clientID") not in (None, caller.client_id):
        raise OpenAdrError(403, "a VEN cannot create a ven for another client")
    # A VEN's own update keeps the targets business logic granted it.
    return caller.client_id, list(existing.targets) if existing is not None else []
