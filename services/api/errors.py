"""Problem details (RFC 9457) for every error the API returns, FastAPI's own included.

Every error body has ``type``, ``title``, ``status`` and ``detail``; validation errors also list
each offending field in ``errors`` (with its ``loc``) and name the first one in ``detail``, so a
client can tell which parameter to fix without reading the schema.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["PROBLEM_MEDIA_TYPE", "ProblemError", "install_problem_handlers", "plus_hint", "problem_response"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemError(Exception):
    """Raise from a route or dependency to answer with a problem detail."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _TITLES.get(status, "error").lower().replace(" ", "-")
        self.title = title or _TITLES.get(status, "Error")
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_response(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    title = title or _TITLES.get(status, "Error")
    body: dict[str, Any] = {
        "type": f"/problems/{slug or title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


# A time with its offset's "+" decoded as a space: "…T14:00:00 09:00" (form encoding turns "+" into " ").
_SPACED_OFFSET = re.compile(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)? \d{2}(:?\d{2})?(/|$)")


def plus_hint(value: object) -> str:
    """A hint to append to a query parameter's error when its value lost a "+" to URL decoding."""
    if isinstance(value, str) and _SPACED_OFFSET.search(value):
        return (
            f" (got {value!r}: a '+' in a URL query string means a space; "
            "escape the offset's '+' as %2B, e.g. 2026-11-23T14:00%2B09:00, or let curl --data-urlencode do it)"
        )
    return ""


def _loc_text(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_problem(exc: RequestValidationError) -> JSONResponse:
    errors = [
        {
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", ""))
            + (plus_hint(err.get("input")) if err.get("loc", ("",))[0] == "query" else ""),
            "type": str(err.get("type", "")),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    field = _loc_text(first["loc"]) or "request"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return problem_response(
        422, f"{field}: {first['msg']}{more}", slug="validation", title="Invalid request", extra={"errors": errors}
    )


# A database failover, as a request sees it: the pooled connection's server died (SQLAlchemy marks the
# error connection_invalidated and discards the pool), a server shutting down (SQLSTATE 57P01-03) or
# a connection failure (class 08), or a write that reached a server just demoted to standby (25006).
# The next request connects to the new primary: 503 with Retry-After, as for a database that is down.
_FAILOVER_SQLSTATES = ("08", "57P01", "57P02", "57P03", "25006")
# asyncpg's own client-side errors for a connection closed under it; SQLAlchemy wraps them as DBAPIError.
_LOST_CONNECTION_ERRORS = {"ConnectionDoesNotExistError", "InternalClientError", "ConnectionResetError"}


def _lost_database(exc: Exception, sqlstate: str) -> bool:
    if getattr(exc, "connection_invalidated", False) or sqlstate.startswith(_FAILOVER_SQLSTATES):
        return True
    cause: BaseException | None = getattr(exc, "orig", None)
    while cause is not None:
        if type(cause).__name__ in _LOST_CONNECTION_ERRORS:
            return True
        cause = cause.__cause__
    return False


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(
            exc.status, exc.detail, slug=exc.slug, title=exc.title, headers=exc.headers, extra=exc.extra
        )

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_problem(exc)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(exc.status_code, str(exc.detail), headers=exc.headers)

    async def on_database(request: Request, exc: Exception) -> JSONResponse:
        # Database down or pool exhausted: the request was fine, the service is not (RFC 9110 503).
        _log.warning("database unavailable", extra={"path": request.url.path, "error": repr(exc)[:300]})
        return problem_response(
            503, "the database is unavailable or overloaded; retry shortly", headers={"Retry-After": "1"}
        )

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        # SQLSTATE class 22 (data exception): PostgreSQL refused a value this request carried (a NUL
        # in text, a number out of range): the request's fault, not the server's. (asyncpg's errors
        # reach SQLAlchemy as plain DBAPIError, so the class is read from the SQLSTATE, not the type.)
        sqlstate = str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "")
        if _lost_database(exc, sqlstate):
            return await on_database(request, exc)
        if not sqlstate.startswith("22"):
            return await on_unexpected(request, exc)
        _log.info("database refused input", extra={"path": request.url.path, "error": repr(exc)[:300]})
        return problem_response(
            400, "a value in the request is not acceptable to the database", slug="bad-request-input"
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(500, "an unexpected error occurred; it has been logged")

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DBAPIError, on_database_error)
    for db_error in (SATimeoutError, OperationalError, InterfaceError, OSError):
        app.add_exception_handler(db_error, on_database)
    app.add_exception_handler(Exception, on_unexpected)
