"""OpenAPI document: problem details documented for every error response the API can give."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from services.api.errors import PROBLEM_MEDIA_TYPE
from services.api.schemas import Problem

__all__ = ["install_openapi"]

_API_ERRORS = {
    "400": "Bad request",
    "401": "Missing, invalid or revoked access token",
    "403": "The caller's role may not read this",
    "404": "No such region or site",
    "413": "Request body too large",
    "422": "A parameter or the body is invalid; `detail` names it",
    "429": "Rate limit exceeded (city clients)",
}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}}


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer", "description": "A token from POST /api/v1/oauth/token"}
        }
        components = schema["components"].setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if path.startswith("/api/"):
                    if path != "/api/v1/oauth/token":
                        operation["security"] = [{"bearer": []}]
                    for code, description in _API_ERRORS.items():
                        responses.setdefault(code, {"description": description})
                for code, response in responses.items():
                    if code.isdigit() and int(code) >= 400 and path != "/readyz":
                        response["content"] = _problem_content()
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]
