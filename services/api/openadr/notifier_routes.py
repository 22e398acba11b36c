"""``GET /notifiers`` and the MQTT topic endpoints (``/notifiers/mqtt/topics/...``) of the 3.1.0 YAML.

Without ``VPP_OPENADR_MQTT_URL`` the VTN offers webhooks only: ``/notifiers`` says so and the topic
endpoints answer 404. With it, ``/notifiers`` names the broker and how to log in, and the topic
endpoints hand out the names `vpp.domain.openadr_mqtt` builds, which are where
`services.api.openadr.mqtt_notifier` publishes.

Authentication: the YAML offers ANONYMOUS, OAUTH2_BEARER_TOKEN and CERTIFICATE. The broker (Mosquitto
with the dynamic-security plugin) checks a username and password, which the VTN describes as
OAUTH2_BEARER_TOKEN with username ``{clientID}``: the VEN logs in with its clientID and, as the
password, the broker secret `vpp broker-config` issued to it — not its OAuth access token, which
Mosquitto cannot check (docs/runbook.md, "Connect a VEN").

Who may ask what follows the YAML's scopes: business logic (``read_all``) every topic; a VEN
(``read_ven_objects``) only the topics of its own ven objects — another client's ven answers 404,
as it does on ``GET /vens/{venID}`` — and 403 (404 where the YAML lists no 403) for the others.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.openadr.problems import OpenAdrError
from services.api.openadr.security import Caller, CallerDep, require
from services.api.state import AppState
from vpp.domain.openadr_mqtt import collection_base, operation_topics, program_base, ven_base
from vpp.postgres.openadr import KINDS, fetch_object

__all__ = ["add_notifier_routes"]

_OBJECT_ID = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.vpp
    return state


def _mqtt_url(request: Request) -> str:
    url = _state(request).settings.openadr_mqtt_url
    if not url:
        raise OpenAdrError(404, "this VTN offers no MQTT notifier binding (GET /notifiers)")
    return url


def _object_id(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if not _OBJECT_ID.match(value):
        raise OpenAdrError(400, f"{name} must match ^[a-zA-Z0-9_-]{{1,128}}$; got {value[:40]!r}")
    return value


def _topics(topics: dict[str, str]) -> JSONResponse:
    return JSONResponse({"topics": topics})


async def _notifiers(request: Request, caller: CallerDep) -> JSONResponse:
    body: dict[str, object] = {"WEBHOOK": True}
    url = _state(request).settings.openadr_mqtt_url
    if url:
        body["MQTT"] = {
            "URIS": [url],
            "serialization": "JSON",
            "authentication": {"method": "OAUTH2_BEARER_TOKEN", "username": "{clientID}"},
        }
    return JSONResponse(body)


def _business_logic_only(caller: Caller, *, refusal: int) -> None:
    """The YAML gives these endpoints to business logic (read_all, or its undefined read_bl). Where
    it lists no 403 (the program endpoints) a VEN gets 404, the one refusal the YAML allows there."""
    if "read_all" not in caller.scopes:
        raise OpenAdrError(
            refusal, "business logic's topics; a VEN's are under /notifiers/mqtt/topics/vens/{venID}/..."
        )


def _collection(object_type: str):  # type: ignore[no-untyped-def]
    async def handler(request: Request, caller: CallerDep) -> JSONResponse:
        _mqtt_url(request)
        _business_logic_only(caller, refusal=404 if object_type == "PROGRAM" else 403)
        return _topics(operation_topics(collection_base(object_type)))

    return handler


async def _program(request: Request, caller: CallerDep) -> JSONResponse:
    return await _program_topics(request, caller, events=False)


async def _program_events(request: Request, caller: CallerDep) -> JSONResponse:
    return await _program_topics(request, caller, events=True)


async def _program_topics(request: Request, caller: CallerDep, *, events: bool) -> JSONResponse:
    _mqtt_url(request)
    program_id = _object_id(request, "programID")
    _business_logic_only(caller, refusal=404)
    async with _state(request).engine.connect() as conn:
        if await fetch_object(conn, KINDS["PROGRAM"], program_id) is None:
            raise OpenAdrError(404, f"no program {program_id!r}")
    base = program_base(program_id)
    return _topics(operation_topics(f"{base}/events") if events else operation_topics(base, with_create=False))


def _ven(suffix: str | None):  # type: ignore[no-untyped-def]
    async def handler(request: Request, caller: CallerDep) -> JSONResponse:
        _mqtt_url(request)
        ven_id = _object_id(request, "venID")
        scope = require(caller, "read_all", "read_ven_objects")
        async with _state(request).engine.connect() as conn:
            ven = await fetch_object(conn, KINDS["VEN"], ven_id)
        # Another client's ven answers exactly like a missing one: its existence is private too.
        if ven is None or (scope != "read_all" and ven.client_id != caller.client_id):
            raise OpenAdrError(404, f"no ven {ven_id!r}")
        base = ven_base(ven.client_id, ven_id)
        if suffix is None:
            return _topics(operation_topics(base, with_create=False))
        return _topics(operation_topics(f"{base}/{suffix}"))

    return handler


def add_notifier_routes(router: APIRouter) -> None:
    def get(path: str, endpoint, name: str) -> None:  # type: ignore[no-untyped-def]
        router.add_api_route(path, endpoint, methods=["GET"], tags=["notifiers"], name=name)

    get("/notifiers", _notifiers, "openadr_notifiers")
    for object_type, collection in (
        ("PROGRAM", "programs"),
        ("EVENT", "events"),
        ("REPORT", "reports"),
        ("SUBSCRIPTION", "subscriptions"),
        ("VEN", "vens"),
        ("RESOURCE", "resources"),
    ):
        get(f"/notifiers/mqtt/topics/{collection}", _collection(object_type), f"openadr_mqtt_topics_{collection}")
    get("/notifiers/mqtt/topics/programs/{programID}", _program, "openadr_mqtt_topics_program")
    get("/notifiers/mqtt/topics/programs/{programID}/events", _program_events, "openadr_mqtt_topics_program_events")
    get("/notifiers/mqtt/topics/vens/{venID}", _ven(None), "openadr_mqtt_topics_ven")
    for suffix in ("events", "programs", "resources"):
        get(f"/notifiers/mqtt/topics/vens/{{venID}}/{suffix}", _ven(suffix), f"openadr_mqtt_topics_ven_{suffix}")
