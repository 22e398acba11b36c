"""The API's composition root: `create_app(settings)` builds the FastAPI application.

Nothing is created at import time. The database engine and per-process state live from the
lifespan's start to its end, so tests and the CLI build as many independent apps as they like.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import create_async_engine

from services.api.cache import ReportCache
from services.api.client_status import ClientStatus
from services.api.errors import install_problem_handlers
from services.api.metrics import ApiMetrics
from services.api.metrics_middleware import MetricsMiddleware
from services.api.openadr import build_router as build_openadr_router
from services.api.openadr import shutdown as openadr_shutdown
from services.api.openapi import install_openapi
from services.api.ratelimit import RateLimiter
from services.api.region_versions import RegionVersions
from services.api.routes import (
    capacity,
    dashboard,
    dashboard_api,
    declared,
    dr,
    health,
    regions,
    site_series,
    sites,
    sufficiency,
    token,
    vens,
)
from services.api.state import AppState
from vpp.postgres.connect import asyncpg_url
from vpp.settings import Settings

__all__ = ["create_app"]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings, *, database_url: str | None = None, clock: Callable[[], datetime] = _utc_now
) -> FastAPI:
    """The API application.

    Parameters
    ----------
    settings : Settings
    database_url : str, optional
        Overrides ``settings.database_url`` (the CLI passes the embedded server's URL).
    clock : callable
        Returns the current aware time; tests pin it.
    """
    url = database_url or settings.database_url
    if not url:
        raise ValueError("the API needs a database URL (VPP_DATABASE_URL or database_url=)")
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
            client_status=ClientStatus(),
            region_versions=versions,
            metrics=metrics,
            clock=clock,
        )
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
        dashboard,
    ):
        app.include_router(module.router)
    app.include_router(build_openadr_router())
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    install_openapi(app)
    return app
