"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api.deps import StateDep
from services.api.errors import ProblemError
from services.api.schemas import Health
from vpp.postgres.api_clients import schema_ready

router = APIRouter(tags=["operations"])

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "The database is unreachable or not migrated"}},
    summary="The database is reachable and migrated",
)
async def readyz(state: StateDep) -> Health | JSONResponse:
    try:
        async with asyncio.timeout(2.0), state.engine.connect() as conn:
            await schema_ready(conn)
    except Exception as exc:  # any failure means "not ready"; the reason goes in the body
        body = Health(status="unavailable", detail=f"database: {type(exc).__name__}")
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics",
)
async def metrics(state: StateDep, request: Request) -> Response:
    # Without a token configured, loopback only (a Prometheus or an agent on the same host); with one,
    # every scraper presents it, loopback included (a reverse proxy on this host makes every client
    # look local).
    token = state.settings.api_metrics_token
    if token is None:
        if (request.client.host if request.client else "") not in _LOOPBACK:
            raise ProblemError(403, "/metrics answers loopback clients only unless VPP_API_METRICS_TOKEN is set")
    else:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").encode()
        if not hmac.compare_digest(presented, token.get_secret_value().encode()):
            raise ProblemError(
                401, "send the metrics token as 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
            )
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
