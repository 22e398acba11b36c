"""OpenADR 3.1.0 VTN under ``/openadr3/3.1.0`` (spec: services/api/openadr/spec/openadr3-3.1.0.yaml)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, FastAPI

from services.api.openadr.auth_routes import add_auth_routes
from services.api.openadr.mqtt_notifier import MqttMetrics, MqttNotifier, MqttPublisher
from services.api.openadr.notifier_routes import add_notifier_routes
from services.api.openadr.outbox import OutboxLoop, OutboxMetrics
from services.api.openadr.problems import OpenAdrRoute
from services.api.openadr.routes import add_object_routes, add_unhandled_route
from services.api.openadr.webhooks import RetryPolicy
from services.api.state import AppState

__all__ = ["PREFIX", "build_router", "shutdown", "start"]

PREFIX = "/openadr3/3.1.0"


def build_router() -> APIRouter:
    """The VTN's router; include it with ``app.include_router(build_router())``."""
    # The VTN's contract is the OpenADR YAML, not the app's own OpenAPI document: keep it out of the latter.
    router = APIRouter(prefix=PREFIX, route_class=OpenAdrRoute, include_in_schema=False)
    add_auth_routes(router)
    add_notifier_routes(router)
    add_object_routes(router)
    add_unhandled_route(router)
    return router


def start(app: FastAPI) -> None:
    """Start the notification delivery loop (call from the app's lifespan once `app.state.vpp` is set)."""
    state: AppState = app.state.vpp
    settings = state.settings
    policy = RetryPolicy(
        attempts=settings.openadr_webhook_attempts,
        first_delay_s=settings.openadr_webhook_first_delay_s,
        max_delay_s=settings.openadr_webhook_max_delay_s,
        timeout_s=settings.openadr_webhook_timeout_s,
    )
    metrics = getattr(app.state, "openadr_outbox_metrics", None) or OutboxMetrics(state.metrics.registry)
    app.state.openadr_outbox_metrics = metrics
    mqtt = _mqtt_notifier(app) if settings.openadr_mqtt_url else None
    loop = OutboxLoop(
        state.engine,
        metrics,
        policy=policy,
        poll_s=settings.openadr_outbox_poll_s,
        retention=timedelta(days=settings.openadr_event_retention_days),
        clock=state.clock,
        mqtt=mqtt,
        allow_local_callbacks=settings.openadr_local_callbacks_allowed,
    )
    app.state.openadr_outbox = loop
    app.state.openadr_mqtt = mqtt
    if mqtt is not None:
        mqtt.start()
    loop.start()


def _mqtt_notifier(app: FastAPI) -> MqttNotifier:
    state: AppState = app.state.vpp
    settings = state.settings
    url = settings.openadr_mqtt_publish_url or settings.openadr_mqtt_url
    assert url is not None
    publisher = MqttPublisher(url, settings.mqtt_openadr_username, settings.secret("mqtt_openadr_password"))
    metrics = getattr(app.state, "openadr_mqtt_metrics", None) or MqttMetrics(state.metrics.registry)
    app.state.openadr_mqtt_metrics = metrics
    return MqttNotifier(
        state.engine,
        publisher,
        metrics,
        poll_s=settings.openadr_outbox_poll_s,
        first_delay_s=settings.openadr_mqtt_first_delay_s,
        max_delay_s=settings.openadr_mqtt_max_delay_s,
    )


async def shutdown(app: FastAPI) -> None:
    """Stop the delivery loop (call from the app's lifespan, after serving); undelivered rows stay queued."""
    loop: OutboxLoop | None = getattr(app.state, "openadr_outbox", None)
    if loop is not None:
        await loop.stop()
    mqtt: MqttNotifier | None = getattr(app.state, "openadr_mqtt", None)
    if mqtt is not None:
        await mqtt.stop()
