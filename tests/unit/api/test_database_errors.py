"""A value PostgreSQL refuses (SQLSTATE class 22) is the request's fault: 400, not 500."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError

from services.api.errors import install_problem_handlers


class _DriverError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


def _status_for(sqlstate: str) -> int:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise DBAPIError("SELECT 1", None, _DriverError(sqlstate))

    async def call() -> int:
        transport = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return (await client.get("/boom")).status_code

    return asyncio.run(call())


@pytest.mark.parametrize(("sqlstate", "status"), [("22021", 400), ("22003", 400), ("42P01", 500)])
def test_data_exceptions_are_a_400_and_others_stay_500(sqlstate: str, status: int) -> None:
    assert _status_for(sqlstate) == status
