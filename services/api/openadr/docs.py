"""The OpenADR 3.1.0 VTN's published OpenAPI document, served so /docs can browse the VTN too.

The VTN's contract is the OpenADR Alliance's YAML (kept in ``spec/``), not the app's generated
document. It is served as it is, except for ``servers``: the YAML names SwaggerHub's mock server,
and "Try it out" must reach this VTN.
"""

from __future__ import annotations

import functools
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from services.api.openadr import PREFIX

__all__ = ["VTN_SPEC_PATH", "vtn_openapi", "vtn_openapi_json"]

VTN_SPEC_PATH = Path(__file__).resolve().parent / "spec" / "openadr3-3.1.0.yaml"


@functools.cache
def vtn_openapi() -> dict[str, Any]:
    """The VTN's OpenAPI document with this server's VTN as its only server (parsed once)."""
    document: dict[str, Any] = yaml.safe_load(VTN_SPEC_PATH.read_text(encoding="utf-8"))
    document["servers"] = [{"url": PREFIX, "description": "This VTN"}]
    info = document.setdefault("info", {})
    # info.version says "1.0.0" (the document's own version); readers look for the release.
    info["title"] = "OpenADR 3.1.0 VTN"
    info["description"] = (
        "The OpenADR Alliance's OpenADR 3.1.0 definition, served by this platform's VTN under "
        f"`{PREFIX}`. Tokens: `POST {PREFIX}/auth/token`.\n\n" + str(info.get("description", ""))
    )
    return document


def _yaml_scalar(value: object) -> str:
    # YAML reads unquoted example timestamps as datetimes; JSON has only their text.
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in the VTN's OpenAPI document")


@functools.cache
def vtn_openapi_json() -> bytes:
    """`vtn_openapi` as JSON bytes (rendered once)."""
    return json.dumps(vtn_openapi(), default=_yaml_scalar, ensure_ascii=False).encode()
