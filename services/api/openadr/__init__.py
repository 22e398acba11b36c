"""OpenADR 3.1.0 VTN under ``/openadr3/3.1.0`` (spec: services/api/openadr/spec/openadr3-3.1.0.yaml)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from services.api.openadr.auth_routes import add_auth_routes
from services.api.openadr.problems import OpenAdrRoute
from services.api.openadr.routes import add_object_routes
from services.api.openadr.webhooks import WebhookDeliverer

__all__ = ["PREFIX", "build_router", "shutdown"]

PREFIX = "/openadr3/3.1.0"


def build_router() -> APIRouter:
    """The VTN's router; include it with ``app.include_router(build_router())``."""
    # The VTN's contract is the OpenADR YAML, not the app's own OpenAPI document: keep it out of the latter.
    router = APIRouter(prefix=PREFIX, route_class=OpenAdrRoute, include_in_schema=False)
    add_auth_routes(router)
    add_object_routes(router)
    return router


async def shutdown(app: FastAPI) -> None:
    """Stop webhook deliveries still retrying (call from the app's lifespan, after serving)."""
    deliverer: WebhookDeliverer | None = getattr(app.state, "openadr_webhooks", None)
    if deliverer is not None:
        await deliverer.aclose()
