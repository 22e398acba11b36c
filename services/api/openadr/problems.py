"""Problem responses the OpenADR way: the spec's `problem` schema, served as ``application/json``.

The REST API answers errors as ``application/problem+json`` and validation errors as 422; the
OpenADR YAML documents neither (only 400/401/403/404/409/500, all ``application/json``). A route
class converts every error raised inside a VTN route, so the rest of the app keeps its own format.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.api.errors import ProblemError

__all__ = ["OpenAdrError", "OpenAdrRoute", "problem", "pydantic_problem"]

_log = logging.getLogger(__name__)


class OpenAdrError(Exception):
    """Raise inside a VTN route to answer with a spec `problem`."""

    def __init__(self, status: int, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def problem(
    status: int, detail: str, headers: Mapping[str, str] | None = None, extra: Mapping[str, Any] | None = None
) -> JSONResponse:
    # `about:blank` with the status phrase as title (RFC 9457 section 4.2.1): the detail says what went wrong.
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def pydantic_problem(error: ValidationError | RequestValidationError) -> OpenAdrError:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(part) for part in first.get("loc", ())) or "body"
    more = len(error.errors()) - 1
    return OpenAdrError(400, f"{where}: {first.get('msg')}" + (f" (and {more} more)" if more > 0 else ""))


class OpenAdrRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenAdrError as exc:
                return problem(exc.status, exc.detail, exc.headers)
            except ProblemError as exc:
                return problem(exc.status, exc.detail, exc.headers)
            except (ValidationError, RequestValidationError) as exc:
                converted = pydantic_problem(exc)
                return problem(converted.status, converted.detail)
            except StarletteHTTPException as exc:
                return problem(exc.status_code, str(exc.detail), exc.headers)
            except Exception:
                # The app's own handler would answer application/problem+json, which the YAML does not allow.
                _log.exception("unhandled error in the OpenADR VTN", extra={"path": request.url.path})
                return problem(500, "an unexpected error occurred; it has been logged")

        return handle
