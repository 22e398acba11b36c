"""Business-logic set-up shared by the privacy and DR tests: ven objects granting each VEN its site."""

from __future__ import annotations

from typing import Any

import httpx

from tests.integration.openadr.conftest import bearer


def grant_sites(vtn: httpx.Client, bl_token: str) -> dict[str, dict[str, Any]]:
    """One ven per VEN client, targeted at its site (``site:<site_id>``); returns them by client ID."""
    out = {}
    for client_id, site_id in (("ven-depot-a", "depot-a"), ("ven-office-b", "office-b")):
        body = {
            "objectType": "BL_VEN_REQUEST",
            "venName": f"ven-{site_id}",
            "clientID": client_id,
            "targets": [f"site:{site_id}"],
        }
        response = vtn.post("/vens", json=body, headers=bearer(bl_token))
        assert response.status_code == 201, response.text
        out[client_id] = response.json()
    return out
