"""The VTN's object endpoints: search, create, read, update and delete for the six object kinds.

Bodies and query strings are parsed here rather than by FastAPI so that every malformed request
is the spec's 400 problem (FastAPI would answer 422, which the YAML does not define).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from json import JSONDecodeError
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from services.api.openadr.access import WRITE_SCOPES, owned_or_404, read_view, visible_or_404
from services.api.openadr.callback_guard import callback_refusal
from services.api.openadr.problems import OpenAdrError
from services.api.openadr.security import Caller, CallerDep, require
from services.api.openadr.wire import to_wire
from services.api.openadr.writes import prepare
from services.api.state import AppState
from vpp.postgres.openadr import (
    KINDS,
    Kind,
    delete_object,
    insert_object,
    replace_object,
    search_objects,
)

__all__ = ["add_object_routes"]

_OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_BOOLS = {"true": True, "false": False}
MAX_LIMIT = 50
# The spec gives skip no maximum; PostgreSQL's OFFSET is a bigint, so a larger skip would be a 500.
MAX_SKIP = 2**63 - 1

# Query parameters that filter on a column, per kind (besides skip, limit, targets, objects, active).
_QUERY: dict[str, dict[str, str]] = {
    "PROGRAM": {},
    "EVENT": {"programID": "program_id"},
    "REPORT": {"programID": "program_id", "eventID": "event_id", "clientName": "client_name"},
    "SUBSCRIPTION": {"programID": "program_id", "clientName": "client_name"},
    "VEN": {"venName": "ven_name"},
    "RESOURCE": {"resourceName": "resource_name", "venID": "ven_id"},
}
# kind -> (collection path, path parameter)
_PATHS = {
    "PROGRAM": ("programs", "programID"),
    "EVENT": ("events", "eventID"),
    "REPORT": ("reports", "reportID"),
    "SUBSCRIPTION": ("subscriptions", "subscriptionID"),
    "VEN": ("vens", "venID"),
    "RESOURCE": ("resources", "resourceID"),
}
_ID_PARAMS = {"programID", "eventID", "venID"}


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.vpp
    return state


def _int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise OpenAdrError(400, f"{name} must be an integer; got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise OpenAdrError(400, f"{name} must be {bounds}; got {value}")
    return value


def _text_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if "\x00" in raw:
        raise OpenAdrError(400, f"{name} must not contain the NUL character")
    if name in _ID_PARAMS and not _OBJECT_ID.match(raw):
        raise OpenAdrError(400, f"{name} must be an object ID (letters, digits, '_' or '-'); got {raw!r}")
    if not 1 <= len(raw) <= 128:
        raise OpenAdrError(400, f"{name} must be 1 to 128 characters long")
    return raw


def _list_param(request: Request, name: str) -> list[str] | None:
    values = request.query_params.getlist(name)
    if not values:
        return None
    if any(not 1 <= len(v) <= 128 or "\x00" in v for v in values):
        raise OpenAdrError(400, f"each {name} value must be 1 to 128 characters long, without NUL characters")
    return values


async def _json(request: Request) -> Any:
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise OpenAdrError(400, "send the object as JSON (Content-Type: application/json)")
    try:
        payload = await request.json()
    except (JSONDecodeError, UnicodeDecodeError):
        raise OpenAdrError(400, "the body is not valid JSON") from None
    if _has_nul(payload):
        raise OpenAdrError(400, "strings in the body must not contain the NUL character (\\u0000)")
    return payload


def _has_nul(value: Any) -> bool:
    # PostgreSQL text and jsonb cannot store U+0000: refuse it here rather than fail in the database.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _object_id(request: Request, param: str) -> str:
    value = str(request.path_params[param])
    if not _OBJECT_ID.match(value):
        raise OpenAdrError(400, f"{param} must be an object ID (letters, digits, '_' or '-'); got {value!r}")
    return value


def _new_id(kind: Kind) -> str:
    return f"{kind.object_type.lower()}-{uuid.uuid4().hex[:20]}"


# OpenADR 3.0.1's target query; 3.1 replaced it with `targets` (a list of strings). Honouring it
# would need a type-to-string mapping 3.1 does not define, so it is refused rather than ignored.
_RETIRED_PARAMS = ("targetType", "targetValues")


async def _search(request: Request, caller: Caller, kind: Kind) -> JSONResponse:
    retired = [name for name in _RETIRED_PARAMS if name in request.query_params]
    if retired:
        raise OpenAdrError(
            400, f"{' and '.join(retired)} are OpenADR 3.0.1 parameters; 3.1.0 filters by targets=<target> (repeatable)"
        )
    skip = _int_param(request, "skip", 0, 0, MAX_SKIP)
    limit = _int_param(request, "limit", MAX_LIMIT, 0, MAX_LIMIT)
    equal = {column: _text_param(request, name) for name, column in _QUERY[kind.object_type].items()}
    targets = _list_param(request, "targets") if kind.object_type not in ("REPORT", "SUBSCRIPTION") else None
    objects = _list_param(request, "objects") if kind.object_type == "SUBSCRIPTION" else None
    if objects is not None and not set(objects) <= set(KINDS):
        raise OpenAdrError(400, f"objects must be among {', '.join(KINDS)}")
    active_at: datetime | None = None
    if kind.object_type == "EVENT" and "active" in request.query_params:
        active = _BOOLS.get(request.query_params["active"].lower())
        if active is None:
            raise OpenAdrError(400, "active must be true or false")
        active_at = _state(request).clock() if active else None
    async with _state(request).engine.connect() as conn:
        view = await read_view(conn, caller, kind)
        if view.granted is not None and targets is not None:
            # The VEN's query targets count only where granted (Definition.md, "Object Privacy").
            targets = [t for t in targets if t in view.granted]
            if not targets:
                return JSONResponse([])
        found = await search_objects(
            conn,
            kind,
            equal=equal,
            all_targets=targets,
            visible_targets=sorted(view.granted) if view.granted is not None else None,
            client_id=view.client_id,
            active_at=active_at,
            # Events: current and upcoming ones first, so a VEN polling the first page never misses one.
            current_first_at=_state(request).clock() if kind.object_type == "EVENT" else None,
            subscribed_to=objects,
            skip=skip,
            limit=limit,
        )
    return JSONResponse([to_wire(obj, granted=view.hide) for obj in found])


# What must be unique per kind, as the client names it (the database's constraint text stays in the server).
_UNIQUE = {"PROGRAM": "programName", "VEN": "venName", "RESOURCE": "resourceName (per ven)"}


def _conflict(kind: Kind, exc: IntegrityError) -> OpenAdrError:
    field = _UNIQUE.get(kind.object_type)
    reason = f": {field} is taken" if field else ""
    return OpenAdrError(409, f"the {kind.object_type.lower()} conflicts with an existing one{reason}")


async def _refuse_local_callbacks(state: AppState, kind: Kind, payload: Any) -> None:
    """A subscription's callbacks must not point into the VTN's own host or link-local network (SSRF)."""
    if kind.object_type != "SUBSCRIPTION" or state.settings.openadr_local_callbacks_allowed:
        return
    operations = payload.get("objectOperations") if isinstance(payload, dict) else None
    for index, operation in enumerate(operations if isinstance(operations, list) else []):
        url = operation.get("callbackUrl") if isinstance(operation, dict) else None
        if isinstance(url, str) and (reason := await callback_refusal(url)) is not None:
            raise OpenAdrError(400, f"objectOperations.{index}.callbackUrl: refused, {reason}")


async def _create(request: Request, caller: Caller, kind: Kind) -> JSONResponse:
    require(caller, WRITE_SCOPES[kind.object_type])
    payload = await _json(request)
    state = _state(request)
    await _refuse_local_callbacks(state, kind, payload)
    try:
        async with state.engine.begin() as conn:
            ready = await prepare(conn, caller, kind.object_type, payload, None)
            obj = await insert_object(
                conn,
                kind,
                object_id=_new_id(kind),
                client_id=ready.client_id,
                targets=ready.targets,
                body=ready.body,
                now=state.clock(),
                columns=ready.columns,
            )
    except IntegrityError as exc:
        raise _conflict(kind, exc) from None
    _wake_outbox(request)
    return JSONResponse(to_wire(obj), status_code=201)


def _wake_outbox(request: Request) -> None:
    # The change's notification rows were committed with it (outbox triggers); this only saves the
    # delivery loop of this process its poll interval.
    loop = getattr(request.app.state, "openadr_outbox", None)
    if loop is not None:
        loop.wake()


async def _read(request: Request, caller: Caller, kind: Kind, param: str) -> JSONResponse:
    object_id = _object_id(request, param)
    async with _state(request).engine.connect() as conn:
        obj, view = await visible_or_404(conn, caller, kind, object_id)
    return JSONResponse(to_wire(obj, granted=view.hide))


async def _update(request: Request, caller: Caller, kind: Kind, param: str) -> JSONResponse:
    object_id = _object_id(request, param)
    payload = await _json(request)
    state = _state(request)
    await _refuse_local_callbacks(state, kind, payload)
    try:
        async with state.engine.begin() as conn:
            existing = await owned_or_404(conn, caller, kind, object_id)
            ready = await prepare(conn, caller, kind.object_type, payload, existing)
            obj = await replace_object(
                conn, kind, object_id, targets=ready.targets, body=ready.body, now=state.clock(), columns=ready.columns
            )
    except IntegrityError as exc:
        raise _conflict(kind, exc) from None
    if obj is None:
        raise OpenAdrError(404, f"no {kind.object_type.lower()} {object_id!r}")
    _wake_outbox(request)
    return JSONResponse(to_wire(obj))


async def _delete(request: Request, caller: Caller, kind: Kind, param: str) -> JSONResponse:
    object_id = _object_id(request, param)
    try:
        async with _state(request).engine.begin() as conn:
            await owned_or_404(conn, caller, kind, object_id)
            obj = await delete_object(conn, kind, object_id)
    except IntegrityError:
        # A program keeps its events and reports (settlement records): delete or keep those first.
        raise OpenAdrError(
            400, f"the {kind.object_type.lower()} {object_id!r} still has events or reports; it was not deleted"
        ) from None
    if obj is None:
        raise OpenAdrError(404, f"no {kind.object_type.lower()} {object_id!r}")
    _wake_outbox(request)
    return JSONResponse(to_wire(obj))


def add_object_routes(router: APIRouter) -> None:
    """Register the five operations of every object kind on `router`."""
    for object_type, (collection, param) in _PATHS.items():
        kind = KINDS[object_type]
        tag = collection

        def bind(kind: Kind = kind, param: str = param) -> dict[str, Callable[..., Awaitable[JSONResponse]]]:
            async def search(request: Request, caller: CallerDep) -> JSONResponse:
                return await _search(request, caller, kind)

            async def create(request: Request, caller: CallerDep) -> JSONResponse:
                return await _create(request, caller, kind)

            async def read(request: Request, caller: CallerDep) -> JSONResponse:
                return await _read(request, caller, kind, param)

            async def update(request: Request, caller: CallerDep) -> JSONResponse:
                return await _update(request, caller, kind, param)

            async def delete(request: Request, caller: CallerDep) -> JSONResponse:
                return await _delete(request, caller, kind, param)

            return {"search": search, "create": create, "read": read, "update": update, "delete": delete}

        handlers = bind()
        name = object_type.lower()
        router.add_api_route(f"/{collection}", handlers["search"], methods=["GET"], tags=[tag], name=f"search_{name}s")
        router.add_api_route(
            f"/{collection}", handlers["create"], methods=["POST"], status_code=201, tags=[tag], name=f"create_{name}"
        )
        item = f"/{collection}/{{{param}}}"
        router.add_api_route(item, handlers["read"], methods=["GET"], tags=[tag], name=f"read_{name}")
        router.add_api_route(item, handlers["update"], methods=["PUT"], tags=[tag], name=f"update_{name}")
        router.add_api_route(item, handlers["delete"], methods=["DELETE"], tags=[tag], name=f"delete_{name}")


def add_unhandled_route(router: APIRouter) -> None:
    """Answer every other path and method under the prefix with the spec's problem as
    ``application/json`` (the app's own 404/405 would be ``application/problem+json``, which the YAML
    does not allow). Register it last: it matches everything."""

    async def unhandled(request: Request, path: str) -> JSONResponse:
        raise OpenAdrError(404, f"the VTN has no operation {request.method} /{path}")

    router.add_api_route(
        "/{path:path}",
        unhandled,
        methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"],
        name="openadr_unhandled",
    )
