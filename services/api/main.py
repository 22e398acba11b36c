"""The API's composition root: `create_app(settings)` builds the FastAPI application.

`create_app()` with no arguments reads the settings from the environment: that is what
`uvicorn services.api.main:create_app --factory` (deploy/compose.yaml, the Dockerfile) calls.

Nothing is created at import time. The database engine and per-process state live from the
lifespan's start to its end, so tests and the CLI build as many independent apps as they like.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from services.api.cache import ReportCache
from services.api.client_status import ClientStatus
from services.api.errors import install_problem_handlers
from services.api.login_throttle import LoginThrottle
from services.api.metrics import ApiMetrics
from services.api.metrics_middleware import MetricsMiddleware
from services.api.openadr import build_router as build_openadr_router
from services.api.openadr import shutdown as openadr_shutdown
from services.api.openadr import start as openadr_start
from services.api.openadr.mqtt_notifier import MqttMetrics
from services.api.openadr.outbox import OutboxMetrics
from services.api.openapi import install_openapi
from services.api.ratelimit import RateLimiter
from services.api.region_versions import RegionVersions
from services.api.request_guard import RequestGuard
from services.api.routes import (
    capacity,
    dashboard,
    dashboard_api,
    declared,
    docs,
    dr,
    health,
    regions,
    site_series,
    sites,
    sufficiency,
    token,
    vens,
    weather,
)
from services.api.state import AppState
from services.api.strict_query import reject_unknown_query
from vpp.embedded.resolve import ensure_database
from vpp.log import configure_logging
from vpp.postgres.connect import asyncpg_url
from vpp.settings import Settings, load_settings

__all__ = ["create_app"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings | None = None, *, database_url: str | None = None, clock: Callable[[], datetime] = _utc_now
) -> FastAPI:
    """The API application.

    Parameters
    ----------
    settings : Settings, optional
        Read from the environment (``VPP_*``) when omitted, as under ``uvicorn --factory``; logging is
        then configured from them too, and an unset ``VPP_DATABASE_URL`` starts the embedded server.
    database_url : str, optional
        Overrides ``settings.database_url`` (the CLI passes the embedded server's URL).
    clock : callable
        Returns the current aware time; tests pin it.
    """
    if settings is None:
        from_env = load_settings()
        configure_logging(from_env.log_level, from_env.log_format)
        if database_url is None:
            database_url, _embedded = ensure_database(from_env)
        return create_app(from_env, database_url=database_url, clock=clock)
    url = database_url or settings.database_url
    if not url:
        raise ValueError("the API needs a database URL (VPP_DATABASE_URL or database_url=)")
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.secret("api_signing_key")  # no key, no start: one line says what to set
        engine = create_async_engine(
            asyncpg_url(url),
            pool_size=settings.api_db_pool_size,
            max_overflow=settings.api_db_pool_size,
            pool_pre_ping=False,
            connect_args={"server_settings": {"application_name": "vpp-api"}},
        )
        versions = RegionVersions(url)
        await versions.start()
        app.state.vpp = AppState(
            settings=settings,
            engine=engine,
            cache=ReportCache(settings.api_cache_max_entries),
            city_limiter=RateLimiter(settings.api_city_rate_limit_per_min),
            login_throttle=LoginThrottle(
                settings.api_token_failures_per_client_per_min, settings.api_token_failures_per_address_per_min
            ),
            client_status=ClientStatus(),
            region_versions=versions,
            metrics=metrics,
            clock=clock,
        )
        openadr_start(app)
        try:
            yield
        finally:
            await openadr_shutdown(app)
            await versions.stop()
            await engine.dispose()

    app = FastAPI(
        title="Kawasaki VPP API",
        version="1.0.0",
        description="Regional renewable sufficiency, sites and telemetry of the Kawasaki virtual power plant.",
        lifespan=lifespan,
        # Served by routes.docs from packaged assets: FastAPI's own pages load Swagger UI from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    for module in (
        token,
        regions,
        declared,
        capacity,
        sufficiency,
        sites,
        site_series,
        health,
        dr,
        dashboard_api,
        vens,
        weather,
    ):
        app.include_router(module.router, dependencies=[Depends(reject_unknown_query)])
    for module in (dashboard, docs):
        app.include_router(module.router)
    app.include_router(build_openadr_router())
    app.add_middleware(
        RequestGuard, max_body_bytes=settings.api_max_body_bytes, max_json_depth=settings.api_max_json_depth
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.openadr_outbox_metrics = OutboxMetrics(metrics.registry)
    app.state.openadr_mqtt_metrics = MqttMetrics(metrics.registry)  # named even without the MQTT binding
    app.state.api_metrics = metrics  # before the lifespan too: deploy/ checks alert rules against it
    install_openapi(app)
    return app
