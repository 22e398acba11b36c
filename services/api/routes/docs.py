"""API documentation that works offline: Swagger UI from a Python package, never a CDN.

``/docs`` browses the REST API (``/openapi.json``), ``/docs/openadr`` the OpenADR 3.1.0 VTN
(``/openadr3/3.1.0/openapi.json``, the Alliance's document); each page links to the other. The assets
come from the ``fastapi-offline`` wheel (a Swagger UI 5 build, Apache-2.0), served under
``/docs/assets/``; the page's own start-up script is a static file, so the pages carry a
Content-Security-Policy that allows this origin only. No ReDoc page: its build fetches a logo from
its vendor's CDN.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from services.api.openadr import PREFIX as VTN_PREFIX
from services.api.openadr.docs import vtn_openapi_json

__all__ = ["router"]

_ASSETS = StaticFiles(directory=Path(fastapi_offline.__file__).resolve().parent / "static")
_STATIC = "/static/docs"  # this project's own page script and style (services/api/static/docs/)
VTN_OPENAPI_URL = f"{VTN_PREFIX}/openapi.json"

# Swagger UI sets inline styles and draws icons as data: images; scripts only from this origin.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

_DOCUMENTS = {
    "rest": ("REST API /api/v1", "/docs", "/openapi.json"),
    "vtn": ("OpenADR 3.1.0 VTN", "/docs/openadr", VTN_OPENAPI_URL),
}

router = APIRouter(include_in_schema=False)


def _page(title: str, current: str) -> HTMLResponse:
    links = " · ".join(
        f'<a href="{href}"{" aria-current=page" if key == current else ""}>{escape(label)}</a>'
        for key, (label, href, _spec) in _DOCUMENTS.items()
    )
    spec = _DOCUMENTS[current][2]
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" href="/docs/assets/favicon.png">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="stylesheet" href="{_STATIC}/docs.css">
</head>
<body>
<nav class="docs-nav">Kawasaki VPP · {links} · <a href="/">Dashboard</a></nav>
<div id="swagger-ui" data-spec="{spec}"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="{_STATIC}/docs.js"></script>
</body>
</html>
"""
    return HTMLResponse(html, headers=_HEADERS)


@router.get("/docs")
async def rest_docs() -> HTMLResponse:
    return _page("Kawasaki VPP API – Swagger UI", "rest")


@router.get("/docs/openadr")
async def vtn_docs() -> HTMLResponse:
    return _page("OpenADR 3.1.0 VTN – Swagger UI", "vtn")


@router.get("/docs/assets/{path:path}")
async def assets(path: str, request: Request) -> Response:
    # StaticFiles keeps the path inside the package's directory and answers 404, ETag and 304.
    response = await _ASSETS.get_response(path, request.scope)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-cache")
    return response


@router.get(VTN_OPENAPI_URL)
async def vtn_openapi() -> Response:
    return Response(vtn_openapi_json(), media_type="application/json")
