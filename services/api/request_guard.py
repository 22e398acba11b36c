"""ASGI middleware that turns away requests no route should have to parse, before any route runs.

Every route, REST and OpenADR alike, sits behind it:
- control characters (NUL included) in the path or the query: 400. PostgreSQL refuses NUL in text,
  and no identifier or parameter of this API has a use for control characters;
- a body larger than ``api_max_body_bytes``: 413, whether announced by Content-Length or not (the
  body is read up to the limit, never further);
- JSON nested deeper than ``api_max_json_depth``: 400 (Python's parser recurses, and a 100,000-level
  body would otherwise end in a RecursionError), and JSON holding an escaped NUL (``\\u0000``): 400;
- a NUL in a form body (the token endpoints): 400.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.errors import problem_response

_OPENADR_PREFIX = "/openadr3/"

__all__ = ["RequestGuard", "json_depth"]

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_ESCAPED_NUL = re.compile(rb"\\u0000", re.IGNORECASE)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def json_depth(body: bytes, limit: int) -> int:
    """Deepest nesting of arrays and objects in `body`, counted up to `limit` + 1 (strings skipped)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return 0  # cannot be deeper than the limit: the common case costs two scans in C
    depth = deepest = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub(b'""', body)):
        depth += 1 if match.group() in (b"[", b"{") else -1
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                break
    return deepest


class _TooLargeError(Exception):
    pass


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_json_depth: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        if _CONTROL.search(unquote_to_bytes(raw_path)) or _CONTROL.search(unquote_to_bytes(scope["query_string"])):
            await self._refuse(
                scope, receive, send, 400, "control characters (such as NUL) are not accepted in the URL"
            )
            return
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._refuse(scope, receive, send, 413, self._too_large_detail())
            return
        try:
            body = await self._read_body(receive)
        except _TooLargeError:
            await self._refuse(scope, receive, send, 413, self._too_large_detail())
            return
        if b"json" in headers.get(b"content-type", b""):
            if json_depth(body, self.max_json_depth) > self.max_json_depth:
                detail = f"the JSON body is nested deeper than {self.max_json_depth} levels"
                await self._refuse(scope, receive, send, 400, detail)
                return
            if _ESCAPED_NUL.search(body):
                await self._refuse(scope, receive, send, 400, "NUL characters (\\u0000) are not accepted in text")
                return
        if b"x-www-form-urlencoded" in headers.get(b"content-type", b"") and b"\x00" in unquote_to_bytes(body):
            await self._refuse(scope, receive, send, 400, "NUL characters are not accepted in form fields")
            return
        await self.app(scope, _replay(body, receive), send)

    def _too_large_detail(self) -> str:
        return f"the request body is larger than {self.max_body_bytes} bytes"

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        slug = "payload-too-large" if status == 413 else "bad-request-input"
        response = problem_response(status, detail, slug=slug)
        if str(scope.get("path", "")).startswith(_OPENADR_PREFIX):
            # The OpenADR 3.1.0 YAML allows only application/json for its Problem bodies.
            response.headers["content-type"] = "application/json"
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # then whatever follows: a disconnect

    return replay
