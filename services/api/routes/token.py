"""OAuth2 client-credentials token endpoint (RFC 6749 section 4.4)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request

from services.api.auth import Principal, dev_client, issue_token
from services.api.deps import ConnDep, StateDep
from services.api.errors import ProblemError
from services.api.login_throttle import verify_or_waste
from services.api.ratelimit import RateLimiter
from services.api.schemas import TokenOut
from vpp.postgres.api_clients import active_client

router = APIRouter(tags=["auth"])


def _invalid_client(detail: str, *, basic: bool = True) -> ProblemError:
    # RFC 6749 section 5.2: the Basic challenge is due only to a client that authenticated with the
    # Authorization header. Sent to a form (client_secret_post) login, it makes a browser hold the
    # fetch behind its native password dialog, and the page never sees the 401.
    headers = {"WWW-Authenticate": 'Basic realm="vpp-api"'} if basic else {}
    return ProblemError(401, detail, slug="invalid-client", headers=headers, extra={"error": "invalid_client"})


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("the Basic authorization header is not valid base64 'id:secret'") from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _invalid_client("the Basic authorization header must hold 'client_id:client_secret'")
    return client_id, secret


@router.post("/api/v1/oauth/token", response_model=TokenOut, summary="Issue an access token")
async def token(
    request: Request,
    state: StateDep,
    conn: ConnDep,
    grant_type: Annotated[str, Form(max_length=64)],
    client_id: Annotated[str | None, Form(max_length=64)] = None,
    client_secret: Annotated[str | None, Form(max_length=256)] = None,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> TokenOut:
    if grant_type != "client_credentials":
        raise ProblemError(
            400,
            f"grant_type must be 'client_credentials'; got {grant_type!r}",
            slug="unsupported-grant-type",
            extra={"error": "unsupported_grant_type"},
        )
    basic = _basic_credentials(authorization)
    if basic is not None:
        client_id, client_secret = basic
    if not client_id or client_secret is None:
        raise _invalid_client("send client_id and client_secret in the form or as HTTP Basic credentials")
    address = request.client.host if request.client else "unknown"
    wait_s = state.login_throttle.wait_s(client_id, address)
    if wait_s > 0:
        raise ProblemError(
            429,
            "too many failed attempts for this client or from this address; retry later",
            slug="too-many-failed-attempts",
            headers={"Retry-After": RateLimiter.retry_after_header(wait_s)},
            extra={"error": "invalid_client"},
        )
    try:
        principal = await _authenticate(state, conn, client_id, client_secret, basic=basic is not None)
    except ProblemError:
        state.login_throttle.failed(client_id, address)
        raise
    access_token, ttl_s = issue_token(state.settings, principal)
    scope = principal.role if principal.site_id is None else f"{principal.role}:{principal.site_id}"
    return TokenOut(access_token=access_token, expires_in=ttl_s, scope=scope)


async def _authenticate(state: StateDep, conn: ConnDep, client_id: str, secret: str, *, basic: bool) -> Principal:
    dev = dev_client(client_id, secret)
    if dev is not None:
        if state.settings.environment != "development":
            raise _invalid_client(
                f"development credentials are refused when VPP_ENVIRONMENT={state.settings.environment}", basic=basic
            )
        return dev
    client = await active_client(conn, client_id)
    # An unknown client id costs the same scrypt work as a known one: timing does not tell them apart.
    if not await verify_or_waste(secret, client.secret_hash if client is not None else None) or client is None:
        raise _invalid_client("unknown client or wrong secret", basic=basic)
    return Principal(client_id, client.role, client.site_id)
