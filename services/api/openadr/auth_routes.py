"""``/auth/server`` and ``/auth/token`` (OAuth2 client credentials, RFC 6749 section 4.4).

Credentials are accepted in the form body or as HTTP Basic (RFC 6749 section 2.3.1). A ``scope``
parameter narrows the granted scopes to those asked for; asking only for scopes the client does
not hold is ``invalid_scope``. Errors are the spec's `problem` with RFC 6749's ``error`` code added.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.api.login_throttle import verify_or_waste
from services.api.openadr.problems import OpenAdrError, problem
from services.api.openadr.security import Caller, issue_token
from services.api.ratelimit import RateLimiter
from services.api.state import AppState
from vpp.postgres.openadr import fetch_client

__all__ = ["add_auth_routes"]


class _OAuthError(OpenAdrError):
    def __init__(
        self, status: int, error: str, detail: str, headers: dict[str, str] | None = None, *, basic: bool = True
    ) -> None:
        # RFC 6749 section 5.2: challenge only a client that sent Basic credentials; a browser answers
        # the challenge to a form post (Swagger UI's "Try it out") with its native password dialog.
        challenge = {"WWW-Authenticate": 'Basic realm="openadr-vtn"'} if status == 401 and basic else None
        super().__init__(status, detail, headers=headers or challenge)
        self.error = error


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _OAuthError(401, "invalid_client", "the Basic credentials are not base64 'id:secret'") from None
    if not sep:
        raise _OAuthError(401, "invalid_client", "the Basic credentials must be 'client_id:client_secret'")
    return client_id, secret


async def _token(request: Request) -> JSONResponse:
    try:
        return await _grant(request)
    except _OAuthError as exc:
        return problem(exc.status, exc.detail, exc.headers, {"error": exc.error, "error_description": exc.detail})


async def _grant(request: Request) -> JSONResponse:
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise _OAuthError(400, "invalid_request", "send the request as application/x-www-form-urlencoded")
    raw = await request.body()
    form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if form.get("grant_type") != "client_credentials":
        raise _OAuthError(400, "unsupported_grant_type", "grant_type must be 'client_credentials'")
    creds = _basic(request.headers.get("authorization", ""))
    client_id, secret = creds if creds is not None else (form.get("client_id"), form.get("client_secret"))
    if not client_id or not secret:
        raise _OAuthError(401, "invalid_client", "send client_id and client_secret in the form or as HTTP Basic")
    if "\x00" in client_id:  # no client has one, and the database could not even look it up
        raise _OAuthError(401, "invalid_client", "unknown client or wrong secret")
    state: AppState = request.app.state.vpp
    address = request.client.host if request.client else "unknown"
    wait_s = state.login_throttle.wait_s(client_id, address)
    if wait_s > 0:
        retry = {"Retry-After": RateLimiter.retry_after_header(wait_s)}
        raise _OAuthError(429, "invalid_client", "too many failed attempts; retry later", retry)
    async with state.engine.connect() as conn:
        record = await fetch_client(conn, client_id)
    # Unknown client ids cost the same scrypt work as known ones (services/api/login_throttle.py).
    if not await verify_or_waste(secret, record.secret_hash if record is not None else None) or record is None:
        state.login_throttle.failed(client_id, address)
        raise _OAuthError(401, "invalid_client", "unknown client or wrong secret", basic=creds is not None)
    scopes = frozenset(record.scopes)
    asked = set(form.get("scope", "").split())
    if asked:
        if not asked & scopes:
            raise _OAuthError(400, "invalid_scope", f"client {client_id!r} holds none of the scopes asked for")
        scopes &= asked
    token, ttl_s = issue_token(state.settings, Caller(record.client_id, record.role, scopes))
    return JSONResponse(
        {"access_token": token, "token_type": "Bearer", "expires_in": ttl_s, "scope": " ".join(sorted(scopes))},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


async def _server(request: Request) -> JSONResponse:
    return JSONResponse({"tokenURL": str(request.url_for("openadr_token"))})


def add_auth_routes(router: APIRouter) -> None:
    router.add_api_route("/auth/server", _server, methods=["GET"], tags=["Auth"], name="openadr_auth_server")
    router.add_api_route("/auth/token", _token, methods=["POST"], tags=["Auth"], name="openadr_token")
