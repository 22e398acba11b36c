"""Regional sufficiency through the public API over data that came in through MQTT and ingest."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from tests.integration.api.api_fixtures import HOURS, SITES
from tests.integration.api.conftest import bearer
from tests.support.waiting import wait_for
from vpp.domain.slots import JST
from vpp.published import LEADING_AREA_FY_CSV, published_csv

pytestmark = pytest.mark.integration


def _range(t0: datetime) -> str:
    return f"{t0.isoformat()}/{(t0 + timedelta(hours=HOURS)).isoformat()}"


def test_public_region_matches_hand_computed_figures(api: httpx.Client, tokens: dict[str, str], t0: datetime) -> None:
    response = api.get(
        "/api/v1/regions/leading-area-public/sufficiency",
        params={"period": "range", "value": _range(t0)},
        headers=bearer(tokens["city"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    slots = HOURS * 2
    public = [s for s in SITES if s.public]
    pv = sum(s.slot_pv_on_site_kwh for s in public) * slots
    contract = sum(s.slot_import_kwh * s.renewable_share for s in public) * slots
    load = sum(s.slot_load_kwh for s in public) * slots
    assert body["supply"]["pv_on_site_kwh"] == pytest.approx(pv, rel=1e-6)
    assert body["supply"]["contract_renewable_kwh"] == pytest.approx(contract, rel=1e-6)
    assert body["demand"]["metered_kwh"] == pytest.approx(load, rel=1e-6)
    exact = (pv + contract) / load
    assert body["exact"]["ratio"] == pytest.approx(exact, rel=1e-9)
    assert body["exact"]["ratio_pct"] == pytest.approx(exact * 100, rel=1e-9)
    # Published rounded: 4 decimals for the ratio, 2 for the percentage (no float noise).
    assert body["ratio"] == round(body["exact"]["ratio"], 4)
    assert body["ratio_pct"] == round(body["exact"]["ratio_pct"], 2)
    assert body["ratio_note"] is None
    assert body["period"]["start"].endswith("+09:00")
    assert body["computed_at"].endswith("+09:00")
    assert body["supply"]["provenance"] == "metered"
    assert body["completeness"] == pytest.approx(1.0)
    assert body["slots_expected"] == len(public) * slots
    assert body["co2_avoided_kg"] == pytest.approx((pv + contract) * body["co2_factor_kg_per_kwh"], rel=1e-6)


def test_fiscal_year_figures_reproduce_the_city_rates(api: httpx.Client, tokens: dict[str, str]) -> None:
    ops = bearer(tokens["operator"])
    response = api.post(
        "/api/v1/regions/leading-area/declared/csv",
        params={"source": "Kawasaki City 2024-11-21"},
        content=published_csv(LEADING_AREA_FY_CSV).encode(),
        headers={**ops, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 2}
    expected = {"2023": 46.26, "2022": 8.26}
    for year, rate_pct in expected.items():
        body = api.get(
            "/api/v1/regions/leading-area/sufficiency", params={"period": "fiscal_year", "value": year}, headers=ops
        ).json()
        assert body["ratio_pct"] == pytest.approx(rate_pct, abs=0.01)
        assert body["ratio_provenance"] == "declared"
        assert body["period"]["label"] == f"FY{year}"
    declared = api.get("/api/v1/regions/leading-area/declared", headers=ops).json()
    assert [d["demand_kwh"] for d in declared] == [400_000_000, 400_000_000]


def test_a_null_ratio_says_why_and_where_the_figures_are(api: httpx.Client, tokens: dict[str, str]) -> None:
    # A city developer's first call: FY2023 for the whole city. The published FY figures belong to the
    # leading area, and no site was metered in FY2023, so the ratio is null; the answer says so.
    ops = bearer(tokens["operator"])
    imported = api.post(
        "/api/v1/regions/leading-area/declared/csv",
        params={"source": "Kawasaki City 2024-11-21"},
        content=published_csv(LEADING_AREA_FY_CSV).encode(),
        headers={**ops, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    params = {"period": "fiscal_year", "value": "2023"}
    body = api.get("/api/v1/regions/kawasaki/sufficiency", params=params, headers=ops).json()
    assert body["ratio"] is None
    assert body["exact"]["ratio"] is None
    note = body["ratio_note"]
    assert note.startswith("no demand in this period")
    assert "0 of " in note
    assert "leading-area" in note
    declared = api.get("/api/v1/regions/leading-area/sufficiency", params=params, headers=ops).json()
    assert declared["ratio_pct"] == 46.26
    assert declared["ratio_note"] is None


def test_sufficiency_as_csv_in_jst_or_utc(api: httpx.Client, tokens: dict[str, str], t0: datetime) -> None:
    city = bearer(tokens["city"])
    params = {"period": "range", "value": _range(t0), "format": "csv"}
    response = api.get("/api/v1/regions/leading-area-public/sufficiency", params=params, headers=city)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    header, row = response.text.splitlines()
    fields = dict(zip(header.split(","), next(csv.reader([row])), strict=True))
    body = api.get(
        "/api/v1/regions/leading-area-public/sufficiency", params={**params, "format": "json"}, headers=city
    ).json()
    assert float(fields["ratio"]) == body["ratio"]
    assert float(fields["exact_ratio"]) == body["exact"]["ratio"]
    assert float(fields["supply_pv_on_site_kwh"]) == body["supply"]["pv_on_site_kwh"]
    assert fields["period_start"] == t0.astimezone(JST).isoformat()
    assert fields["period_start"].endswith("+09:00")
    utc = api.get(
        "/api/v1/regions/leading-area-public/sufficiency", params={**params, "tz": "UTC"}, headers=city
    ).text.splitlines()
    utc_fields = dict(zip(utc[0].split(","), next(csv.reader([utc[1]])), strict=True))
    assert utc_fields["period_start"] == t0.astimezone(UTC).isoformat()
    assert datetime.fromisoformat(utc_fields["period_start"]) == datetime.fromisoformat(fields["period_start"])
    utc_json = api.get(
        "/api/v1/regions/leading-area-public/sufficiency",
        params={"period": "range", "value": _range(t0), "tz": "UTC"},
        headers=city,
    ).json()
    assert utc_json["period"]["start"] == t0.astimezone(UTC).isoformat()


def test_unescaped_plus_and_unknown_parameters_are_named(
    api: httpx.Client, tokens: dict[str, str], t0: datetime
) -> None:
    ops = bearer(tokens["operator"])
    # Typed by hand into a URL, "+09:00" arrives as " 09:00": the 422 names the field and says why.
    raw = f"/api/v1/regions/kawasaki/sufficiency?period=slot&value={t0.astimezone(JST):%Y-%m-%dT%H:%M}+09:00"
    response = api.get(raw, headers=ops)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail.startswith("query.value:")
    assert "%2B" in detail
    series = f"/api/v1/sites/depot-a/energy?start={t0.astimezone(JST):%Y-%m-%dT%H:%M:%S}+09:00&end=2099-01-01T00:00Z"
    response = api.get(series, headers=ops)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("query.start:")
    assert "%2B" in response.json()["detail"]
    # Escaped, the same value works.
    escaped = raw.replace("+09:00", "%2B09:00")
    assert api.get(escaped, headers=ops).status_code == 200
    # A parameter an endpoint does not take is refused by name, not silently ignored.
    response = api.get("/api/v1/regions", params={"format": "csv"}, headers=ops)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("query.format: this endpoint does not take 'format'")
    params = {"period": "day", "value": "2026-11-23", "fromat": "csv"}
    response = api.get("/api/v1/regions/kawasaki/sufficiency", params=params, headers=ops)
    assert response.status_code == 422
    assert response.json()["detail"].startswith("query.fromat: this endpoint does not take 'fromat'")
    assert "format" in response.json()["detail"]


def test_city_cannot_see_an_aggregate_of_fewer_than_k_private_sites(
    api: httpx.Client, tokens: dict[str, str], t0: datetime
) -> None:
    params = {"period": "range", "value": _range(t0)}
    city = api.get("/api/v1/regions/kawasaki/sufficiency", params=params, headers=bearer(tokens["city"]))
    assert city.status_code == 403
    assert city.json()["type"] == "/problems/aggregate-suppressed"
    ops = api.get("/api/v1/regions/kawasaki/sufficiency", params=params, headers=bearer(tokens["operator"]))
    assert ops.status_code == 200
    assert ops.json()["private_sites"] == 2
    assert ops.json()["contributing_sites"] == len(SITES)


def test_new_data_invalidates_the_cached_report(
    api: httpx.Client, tokens: dict[str, str], t0: datetime, filled_db: str
) -> None:
    ops = bearer(tokens["operator"])
    params = {"period": "range", "value": _range(t0)}
    before = api.get("/api/v1/regions/leading-area-public/sufficiency", params=params, headers=ops).json()
    again = api.get("/api/v1/regions/leading-area-public/sufficiency", params=params, headers=ops).json()
    assert again["computed_at"] == before["computed_at"]  # served from the cache
    with psycopg.connect(filled_db) as conn:
        conn.execute(
            """UPDATE site_energy_30min SET load_kwh = load_kwh + 100
               WHERE site_pk = (SELECT id FROM sites WHERE site_id = 'hall-d') AND slot_start = %s""",
            (t0,),
        )
        conn.commit()
    # The API learns of the change by NOTIFY, delivered at commit: allow it a moment to arrive.
    after = wait_for(
        lambda: api.get("/api/v1/regions/leading-area-public/sufficiency", params=params, headers=ops).json(),
        lambda body: body["data_version"] > before["data_version"],
        timeout_s=5,
        every_s=0.02,
    )
    assert after["demand"]["metered_kwh"] == pytest.approx(before["demand"]["metered_kwh"] + 100)
    with psycopg.connect(filled_db) as conn:  # leave the shared data as the other tests expect it
        conn.execute(
            """UPDATE site_energy_30min SET load_kwh = load_kwh - 100
               WHERE site_pk = (SELECT id FROM sites WHERE site_id = 'hall-d') AND slot_start = %s""",
            (t0,),
        )
        conn.commit()


def test_live_view_reports_the_running_slot(api: httpx.Client, tokens: dict[str, str]) -> None:
    body = api.get("/api/v1/regions/leading-area-public/sufficiency/live", headers=bearer(tokens["city"])).json()
    assert body["period"]["kind"] == "slot"
    assert body["slots_expected"] == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period": "week", "value": "1"}, "period"),
        ({"period": "fiscal_year", "value": "23"}, "value"),
        ({"period": "range", "value": "2026-11-01T00:00/2026-11-02T00:00"}, "value"),
        ({"period": "day"}, "value"),
    ],
)
def test_bad_periods_are_problem_details_naming_the_field(
    api: httpx.Client, tokens: dict[str, str], params: dict[str, str], field: str
) -> None:
    response = api.get("/api/v1/regions/kawasaki/sufficiency", params=params, headers=bearer(tokens["operator"]))
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["detail"].startswith(f"query.{field}")
    assert not math.isnan(body["status"])


def test_verified_dr_reductions_count_as_savings(
    api: httpx.Client, tokens: dict[str, str], t0: datetime, filled_db: str
) -> None:
    ops = bearer(tokens["operator"])
    with psycopg.connect(filled_db) as conn:
        event = conn.execute(
            """INSERT INTO dr_events (event_id, kind, status, start_at, end_at, requested_kw)
               VALUES ('api-test', 'peak_cut', 'completed', %s, %s, 10) RETURNING id""",
            (t0, t0 + timedelta(hours=1)),
        ).fetchone()
        assert event is not None
        conn.execute(
            """INSERT INTO dr_verified_reductions (event_pk, site_pk, slot_start, baseline_kwh, actual_kwh,
                                                   reduction_kwh, method, verified_at)
               SELECT %s, id, %s, 20, 17, 3, 'test', now() FROM sites WHERE site_id = 'school-c'""",
            (event[0], t0),
        )
        conn.commit()
    try:
        # No-cache: verification writes do not bump the region's data version yet (see the report).
        body = api.get(
            "/api/v1/regions/leading-area-public/sufficiency",
            params={"period": "range", "value": _range(t0)},
            headers={**ops, "Cache-Control": "no-cache"},
        ).json()
        assert body["savings"]["verified_dr_kwh"] == pytest.approx(3.0)
        assert body["savings"]["provenance"] == "metered"
    finally:
        with psycopg.connect(filled_db) as conn:
            conn.execute("DELETE FROM dr_events WHERE event_id = 'api-test'")
            conn.commit()


def test_declared_figures_that_include_the_metered_sites_are_shown_beside_them_never_added(
    api: httpx.Client, tokens: dict[str, str], t0: datetime, filled_db: str
) -> None:
    ops = bearer(tokens["operator"])
    params = {"period": "range", "value": _range(t0)}
    path = "/api/v1/regions/leading-area-public"
    metered = api.get(f"{path}/sufficiency", params=params, headers=ops).json()
    figure = {"period": "range", "value": _range(t0), "renewable_supply_kwh": 300.0, "saving_kwh": 0.0,
              "demand_kwh": 1_000.0, "source": "overlap-test"}  # fmt: skip
    try:
        # Declared net of the metered sites: the two are added, and the report says it is mixed.
        net = api.post(f"{path}/declared", json={**figure, "includes_metered_sites": False}, headers=ops)
        assert net.status_code == 201, net.text
        # The API learns of the change by NOTIFY, delivered at commit: allow it a moment to arrive.
        added = wait_for(
            lambda: api.get(f"{path}/sufficiency", params=params, headers=ops).json(),
            lambda body: body["data_version"] > metered["data_version"], timeout_s=5, every_s=0.02,
        )  # fmt: skip
        assert added["demand"]["total_kwh"] == pytest.approx(metered["demand"]["total_kwh"] + 1_000.0)
        assert added["ratio_provenance"] == "mixed"
        assert added["declared_separately"] is None

        # The default: the figure already covers the metered sites, so it is reported beside them.
        assert api.post(f"{path}/declared", json=figure, headers=ops).json()["includes_metered_sites"] is True
        apart = wait_for(
            lambda: api.get(f"{path}/sufficiency", params=params, headers=ops).json(),
            lambda body: body["data_version"] > added["data_version"], timeout_s=5, every_s=0.02,
        )  # fmt: skip
        assert apart["demand"]["total_kwh"] == pytest.approx(metered["demand"]["total_kwh"])
        assert apart["ratio"] == pytest.approx(metered["ratio"])
        assert apart["ratio_provenance"] == "metered"
        separate = apart["declared_separately"]
        assert (separate["demand_kwh"], separate["ratio"], separate["source"]) == (1_000.0, 0.3, "overlap-test")
        assert "twice" in separate["reason"]
    finally:
        with psycopg.connect(filled_db) as conn:  # leave the shared data as the other tests expect it
            conn.execute("DELETE FROM declared_figures WHERE source = 'overlap-test'")
