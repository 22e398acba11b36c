"""A fresh installation's seed: regions, the model depot and the city's published figures, idempotently."""

from __future__ import annotations

import psycopg
import pytest

from services.cli.seed import seed_defaults, seed_published_figures

pytestmark = pytest.mark.integration


def test_published_figures_are_seeded_once_whatever_the_number_of_starts(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        for _ in range(2):  # `vpp up` seeds on every start
            seed_defaults(conn)
            seed_published_figures(conn)
        declared = conn.execute(
            """SELECT to_char(d.period_start AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD'),
                      (d.renewable_supply_kwh + d.saving_kwh) / d.demand_kwh
               FROM declared_figures d JOIN regions r ON r.id = d.region_pk
               WHERE r.region_id = 'leading-area' ORDER BY d.period_start"""
        ).fetchall()
        capacity_kw = conn.execute(
            """SELECT sum(c.capacity_kw) FROM declared_capacity c JOIN regions r ON r.id = c.region_pk
               WHERE r.region_id = 'kawasaki'"""
        ).fetchone()
    # Fiscal years start on 1 April (JST); FY2023's rate is the city's "約46%" (46.3%), FY2022's 8.3%.
    assert [day for day, _ in declared] == ["2022-04-01", "2023-04-01"]
    assert [round(rate * 100, 1) for _, rate in declared] == [8.3, 46.3]
    assert capacity_kw is not None
    assert capacity_kw[0] == pytest.approx(204_895)  # the table's FY2020 total, kW
