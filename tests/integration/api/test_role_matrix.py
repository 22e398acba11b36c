"""Every route x every role: the status each caller gets. New routes must be added here."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from services.api.main import create_app
from services.api.routes import dr
from tests.integration.api.api_fixtures import api_settings
from tests.integration.api.conftest import bearer
from vpp.domain.slots import JST

pytestmark = pytest.mark.integration

ROLES = ("anonymous", "operator", "city", "site")  # the site client is depot-a's (private)
CSV_FY = "fiscal_year,renewable_supply_kwh,saving_kwh,civil_demand_kwh\n2021,10,1,100\n"
CSV_CAPACITY = "source,fy2020_actual_kw\nsolar,100\ntotal,100\n"
REGION_BODY = {"name": "Matrix test", "site_ids": ["school-c"]}
DECLARED_BODY = {"period": "month", "value": "2024-05", "demand_kwh": 10.0, "source": "matrix"}

WEATHER_BODY = {
    "latitude": 35.5,
    "longitude": 139.6,
    "source": "matrix",
    "issued_at": "2026-07-01T17:00:00+09:00",
    "slots": [{"start": "2026-07-02T12:00:00+09:00", "ghi_w_m2": 800.0}],
}

# (method, path template, concrete path, request extras, {role: status})
Case = tuple[str, str, str, dict[str, object], dict[str, int]]


def _cases(month: str, window: dict[str, str]) -> list[Case]:
    fy = {"period": "fiscal_year", "value": "2023"}
    aggregate = {"anonymous": 401, "operator": 200, "city": 200, "site": 403}
    operator_only = {"anonymous": 401, "operator": 200, "city": 403, "site": 403}
    private_site = {"anonymous": 401, "operator": 200, "city": 403, "site": 200}
    public_site = {"anonymous": 401, "operator": 200, "city": 200, "site": 403}
    everyone = dict.fromkeys(ROLES, 200)
    r = "/api/v1/regions/{region_id}"
    s = "/api/v1/sites/{site_id}"
    return [
        ("GET", "/api/v1/regions", "/api/v1/regions", {}, aggregate),
        ("GET", r, "/api/v1/regions/leading-area-public", {}, aggregate),
        ("PUT", r, "/api/v1/regions/matrix", {"json": REGION_BODY}, operator_only),
        ("GET", r + "/declared", "/api/v1/regions/leading-area/declared", {}, aggregate),
        (
            "POST",
            r + "/declared",
            "/api/v1/regions/matrix/declared",
            {"json": DECLARED_BODY},
            {**operator_only, "operator": 201},
        ),
        (
            "POST",
            r + "/declared/csv",
            "/api/v1/regions/matrix/declared/csv",
            {"content": CSV_FY, "headers": {"Content-Type": "text/csv"}},
            operator_only,
        ),
        ("GET", r + "/renewable-capacity", "/api/v1/regions/leading-area-public/renewable-capacity", {}, aggregate),
        (
            "POST",
            r + "/renewable-capacity/csv",
            "/api/v1/regions/matrix/renewable-capacity/csv",
            {"content": CSV_CAPACITY, "headers": {"Content-Type": "text/csv"}},
            operator_only,
        ),
        ("GET", r + "/sufficiency", "/api/v1/regions/leading-area-public/sufficiency", {"params": fy}, aggregate),
        # Two private sites with data in the window < k = 3: suppressed for the city.
        (
            "GET",
            r + "/sufficiency",
            "/api/v1/regions/kawasaki/sufficiency",
            {"params": {"period": "range", "value": f"{window.get('start')}/{window.get('end')}"}},
            {**aggregate, "city": 403},
        ),
        ("GET", r + "/sufficiency/live", "/api/v1/regions/leading-area-public/sufficiency/live", {}, aggregate),
        ("GET", "/api/v1/sites", "/api/v1/sites", {}, {**everyone, "anonymous": 401}),
        ("GET", s, "/api/v1/sites/depot-a", {}, private_site),
        ("GET", s, "/api/v1/sites/school-c", {}, public_site),
        ("GET", s + "/telemetry", "/api/v1/sites/depot-a/telemetry", {"params": window}, private_site),
        ("GET", s + "/telemetry", "/api/v1/sites/school-c/telemetry", {"params": window}, public_site),
        ("GET", s + "/energy", "/api/v1/sites/depot-a/energy", {"params": window}, private_site),
        ("GET", s + "/energy", "/api/v1/sites/school-c/energy", {"params": window}, public_site),
        (
            "GET",
            s + "/demand",
            "/api/v1/sites/depot-a/demand",
            {"params": {"from_month": month, "to_month": month}},
            private_site,
        ),
        ("GET", s + "/sufficiency", "/api/v1/sites/depot-a/sufficiency", {"params": fy}, private_site),
        ("GET", s + "/sufficiency", "/api/v1/sites/school-c/sufficiency", {"params": fy}, public_site),
        (
            "PUT",
            s + "/peak-programme",
            "/api/v1/sites/depot-a/peak-programme",
            {"json": {"enrolled": True}},
            operator_only,
        ),
        # The token endpoint authenticates by client credentials, not bearer tokens: none sent here.
        (
            "POST",
            "/api/v1/oauth/token",
            "/api/v1/oauth/token",
            {"data": {"grant_type": "client_credentials"}},
            dict.fromkeys(ROLES, 401),
        ),
        # The operations dashboard's aggregates: operators only.
        (
            "GET",
            "/api/v1/dashboard/regions/{region_id}/flows",
            "/api/v1/dashboard/regions/kawasaki/flows",
            {},
            operator_only,
        ),
        ("GET", "/api/v1/dashboard/live", "/api/v1/dashboard/live", {}, operator_only),
        ("GET", "/api/v1/dashboard/dr/timeline", "/api/v1/dashboard/dr/timeline", {}, operator_only),
        ("GET", "/api/v1/dashboard/vens", "/api/v1/dashboard/vens", {}, operator_only),
        (
            "POST",
            "/api/v1/weather/forecasts",
            "/api/v1/weather/forecasts",
            {"json": WEATHER_BODY},
            {**operator_only, "operator": 201},
        ),
        (
            "GET",
            "/api/v1/weather/forecasts/day-ahead",
            "/api/v1/weather/forecasts/day-ahead",
            {"params": {"latitude": 35.5, "longitude": 139.6, "day": "2026-07-02"}},
            aggregate,
        ),
        ("GET", "/healthz", "/healthz", {}, everyone),
        ("GET", "/readyz", "/readyz", {}, everyone),
        ("GET", "/metrics", "/metrics", {}, everyone),
    ]


def test_role_matrix(api: httpx.Client, tokens: dict[str, str], t0: datetime) -> None:
    window = {"start": t0.isoformat(), "end": (t0 + timedelta(hours=1)).isoformat()}
    cases = _cases(t0.astimezone(JST).strftime("%Y-%m"), window)
    failures = []
    for method, _template, path, extras, expected in cases:
        for role in ROLES:
            headers = dict(extras.get("headers", {}))  # type: ignore[call-overload]
            if role != "anonymous":
                headers.update(bearer(tokens[role]))
            kwargs = {k: v for k, v in extras.items() if k != "headers"}
            status = api.request(method, path, headers=headers, **kwargs).status_code  # type: ignore[arg-type]
            if status != expected[role]:
                failures.append(f"{method} {path} as {role}: {status}, expected {expected[role]}")
    assert not failures, "\n".join(failures)


def test_matrix_covers_every_route() -> None:
    app = create_app(api_settings(), database_url="postgresql://unused@127.0.0.1:1/unused")
    others = {(m, getattr(route, "path", "")) for route in dr.router.routes for m in getattr(route, "methods", ())}
    documented = {
        (method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations
    }
    covered = {(c[0], c[1]) for c in _cases("2026-01", {})}
    assert documented - others == covered
