"""The operations dashboard: one static page at ``/`` and its assets under ``/static/``.

Plain files, no build step: the page is vanilla JavaScript, Chart.js is vendored from the npm
registry. Assets are served through a route rather than a mount so that including this router is
all ``create_app`` has to do (``include_router`` does not carry mounts over).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Scripts and styles only from this origin: no inline code, so an injected string cannot run.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_PAGE_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)
_files = StaticFiles(directory=STATIC_DIR)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


@router.get("/static/{path:path}")
async def static(path: str, request: Request) -> Response:
    # StaticFiles resolves the path inside the directory (no traversal) and answers 404, ETag and 304.
    response = await _files.get_response(path, request.scope)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.setdefault("Cache-Control", "no-cache")
    return response
