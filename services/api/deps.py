"""Request dependencies as `Annotated` aliases: the app state, a database connection, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from services.api.auth import Principal, Role, TokenError, decode_token
from services.api.errors import ProblemError
from services.api.lazy_connection import LazyConnection
from services.api.state import AppState

__all__ = [
    "AggregateReaderDep",
    "ConnDep",
    "LazyConnDep",
    "NowDep",
    "OperatorDep",
    "PrincipalDep",
    "StateDep",
]


async def _state(request: Request) -> AppState:
    state: AppState = request.app.state.vpp
    return state


StateDep = Annotated[AppState, Depends(_state)]


async def _lazy_connection(request: Request) -> AsyncIterator[LazyConnection]:
    state: AppState = request.app.state.vpp
    lazy = LazyConnection(state.engine)
    try:
        yield lazy
    finally:
        await lazy.close()


LazyConnDep = Annotated[LazyConnection, Depends(_lazy_connection)]


async def _connection(lazy: LazyConnDep) -> AsyncConnection:
    return await lazy.get()


ConnDep = Annotated[AsyncConnection, Depends(_connection)]


async def _now(state: StateDep) -> datetime:
    return state.clock()


NowDep = Annotated[datetime, Depends(_now)]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class _Authorized:
    """The caller, authenticated from its bearer token and allowed one of `roles`.

    One dependency rather than a chain (bearer scheme -> principal -> role check): the repeated
    report path is measured against a trivial endpoint, and each dependency level costs time.
    The bearer scheme is documented in the OpenAPI document by `services.api.openapi`.
    """

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(self, request: Request) -> Principal:
        state: AppState = request.app.state.vpp
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ProblemError(401, "send an access token as 'Authorization: Bearer <token>'", headers=_CHALLENGE)
        principal = state.tokens.get(token)
        if principal is None:
            try:
                principal, expires_s = decode_token(state.settings, token)
            except TokenError as exc:
                raise ProblemError(401, str(exc), headers=_CHALLENGE) from None
            state.tokens.put(token, principal, expires_s)
        if not principal.dev and not await state.client_status.is_active(state.engine, principal.client_id):
            raise ProblemError(401, f"client {principal.client_id!r} has been revoked", headers=_CHALLENGE)
        if principal.role == "city":
            wait_s = state.city_limiter.acquire(principal.client_id)
            if wait_s > 0:
                raise ProblemError(
                    429,
                    f"rate limit of {state.settings.api_city_rate_limit_per_min} requests per minute exceeded",
                    headers={"Retry-After": state.city_limiter.retry_after_header(wait_s)},
                )
        if principal.role not in self.roles:
            raise ProblemError(
                403, f"role {principal.role!r} may not use this endpoint (needs {' or '.join(self.roles)})"
            )
        return principal


PrincipalDep = Annotated[Principal, Depends(_Authorized("operator", "city", "site"))]
OperatorDep = Annotated[Principal, Depends(_Authorized("operator"))]
AggregateReaderDep = Annotated[Principal, Depends(_Authorized("operator", "city"))]
