"""A site's PV forecast from the utility's day-ahead irradiance forecast, once its record at the site says so.

The site sees 85% of what the forecast's sky would give (its bias: shading, soiling); the weather changes from
day to day, so last week's index is a poor guess, and the forecast misses each day's irradiance by about 5%.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import psycopg
import pytest

from services.dr_scheduler.peak_programme import PeakProgramme, event_id_for
from services.dr_scheduler.scheduler import Scheduler
from services.dr_scheduler.site_forecast import (
    PERFORMANCE_RATIO,
    PV_FROM_RECENT_PV,
    PV_FROM_WEATHER_FORECAST,
    forecast_from_history,
)
from tests.integration.dr.test_dr_api import RecordingSink
from tests.integration.ingest_fixtures import DEPOT_DEVICES
from vpp.domain.forecast import clear_sky_ghi_w_m2, clear_sky_pv_kw_per_kw
from vpp.domain.slots import JST, SLOT
from vpp.domain.weather_forecast import MIN_PV_ERROR_SD, RECORD_DAYS
from vpp.postgres import dr_events as store
from vpp.postgres.energy_history import load_dr_sites
from vpp.postgres.peak_programme import set_enrolled
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

DAY = date(2026, 5, 20)
LAT, LON = 35.57, 139.6
PV_KW, SITE_BIAS, TARGET_INDEX = 40.0, 0.85, 0.35
HISTORY_DAYS = 28


def _slots(day: date) -> list[datetime]:
    midnight = datetime.combine(day, time(0), JST)
    return [midnight + k * SLOT for k in range(48)]


def _pv_kw(day: date, index: float) -> np.ndarray:  # type: ignore[type-arg]
    return clear_sky_pv_kw_per_kw(_slots(day), LAT, LON) * PV_KW * PERFORMANCE_RATIO * index * SITE_BIAS


def _site(conn: psycopg.Connection, site_id: str, indices: dict[date, float]) -> None:
    record = SiteRecord(site_id, site_id, LAT, LON, pv_kw=PV_KW, battery_kwh=60.0, battery_kw=15.0)
    site_pk = register_site(conn, record, DEPOT_DEVICES)
    for day, index in indices.items():
        for start, pv_kw in zip(_slots(day), _pv_kw(day, index), strict=True):
            load_kw = 20.0
            conn.execute(
                """INSERT INTO site_energy_30min (site_pk, slot_start, import_kwh, load_kwh, pv_kwh, ev_kwh, coverage)
                   VALUES (%s, %s, %s, %s, %s, 0, 1)""",
                (site_pk, start, max(load_kw - pv_kw, 0.0) * 0.5, load_kw * 0.5, pv_kw * 0.5),
            )
    conn.execute(
        "INSERT INTO readings (device_pk, ts, soc_pct) SELECT id, %s, 50 FROM devices WHERE site_pk = %s"
        " AND kind = 'battery'",
        (datetime.combine(DAY, time(0), JST) - timedelta(minutes=1), site_pk),
    )
    conn.commit()


def _issue(
    conn: psycopg.Connection, day: date, issued_at: datetime, index: float, source: str = "test", slots: int = 48
) -> None:
    """An issue for ``day``: clear sky × ``index``, its first ``slots`` slots."""
    (forecast_id,) = conn.execute(
        "INSERT INTO weather_forecasts (latitude, longitude, source, issued_at) VALUES (35.6, 139.65, %s, %s)"
        " RETURNING id",
        (source, issued_at),
    ).fetchone()  # type: ignore[misc]
    ghi = clear_sky_ghi_w_m2(_slots(day), LAT, LON) * index
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO weather_forecast_slots (forecast_id, slot_start, ghi_w_m2) VALUES (%s, %s, %s)",
            [(forecast_id, start, float(g)) for start, g in zip(_slots(day), ghi, strict=True)][:slots],
        )
    conn.commit()


def _changing_sky(seed: int) -> tuple[np.random.Generator, list[date], dict[date, float]]:
    """The site's history days, and a clear-sky index for each that changes from day to day (seeded)."""
    rng = np.random.default_rng(seed)
    history = [DAY - timedelta(days=k) for k in range(HISTORY_DAYS, 0, -1)]
    return rng, history, {d: float(rng.uniform(0.25, 1.0)) for d in history}


def _day_ahead(day: date) -> datetime:
    return datetime.combine(day - timedelta(days=1), time(17), JST)


def test_a_forecast_that_beats_last_weeks_index_sets_the_pv_forecast_and_its_error(db_url: str) -> None:
    rng, history, indices = _changing_sky(20)
    with psycopg.connect(db_url) as conn:
        _site(conn, "sunny-a", indices)
        (site,) = load_dr_sites(conn, ["sunny-a"])
        actual_kwh = _pv_kw(DAY, TARGET_INDEX).sum() * 0.5

        without = forecast_from_history(conn, site, DAY)
        assert without.pv_source == PV_FROM_RECENT_PV
        assert without.pv_error_sd is None

        # Issues made before each day began; each misses the day's irradiance by about 5%.
        misses = rng.normal(0.0, 0.05, RECORD_DAYS + 1)
        for day, miss in zip([*history[-RECORD_DAYS:], DAY], misses, strict=True):
            _issue(conn, day, _day_ahead(day), indices.get(day, TARGET_INDEX) * (1 + miss))
        # A later issue made during the day is not the day-ahead forecast: it must not be used.
        _issue(conn, DAY, datetime.combine(DAY, time(6), JST), 1.0)

        with_weather = forecast_from_history(conn, site, DAY)
        assert with_weather.pv_source == PV_FROM_WEATHER_FORECAST
        forecast_kwh = with_weather.forecast.pv_kw.sum() * 0.5
        recent_kwh = without.forecast.pv_kw.sum() * 0.5
        assert abs(forecast_kwh / actual_kwh - 1) < 0.12  # the bias learned, the day's sky forecast
        assert abs(recent_kwh / actual_kwh - 1) > 0.5  # last week's index: a sunnier week than the day
        assert with_weather.pv_error_sd is not None
        assert MIN_PV_ERROR_SD <= with_weather.pv_error_sd < 0.15
        assert np.array_equal(with_weather.forecast.load_kw, without.forecast.load_kw)

        # The day's peak programme solves on it, and says so in the day's event.
        set_enrolled(conn, "sunny-a", True)
        conn.commit()
        programme = PeakProgramme(Scheduler(conn, RecordingSink()), background=False)
        assert programme.run(datetime.combine(DAY, time(0, 1, 30), JST)) == ["sunny-a"]
        event = store.get_event(conn, event_id_for("sunny-a", DAY))
        assert event is not None
        (row,) = store.event_sites(conn, event.pk)
        assert row.plan is not None
        assert row.plan["pv_forecast"] == PV_FROM_WEATHER_FORECAST


def test_a_forecast_is_not_used_without_a_record_that_beats_last_weeks_index(db_url: str) -> None:
    rng = np.random.default_rng(21)
    history = [DAY - timedelta(days=k) for k in range(HISTORY_DAYS, 0, -1)]
    steady = dict.fromkeys(history, 0.7)  # the same sky every day: last week's index is right
    with psycopg.connect(db_url) as conn:
        _site(conn, "steady-b", steady)
        (site,) = load_dr_sites(conn, ["steady-b"])
        # A forecast with a record of three days only, however good: not yet trusted.
        for day in [*history[-3:], DAY]:
            _issue(conn, day, _day_ahead(day), 0.7, source="short")
        assert forecast_from_history(conn, site, DAY).pv_source == PV_FROM_RECENT_PV
        # A full record that misses by 30%, against last week's exact index: not used either.
        for day in history[-RECORD_DAYS:-3]:
            _issue(conn, day, _day_ahead(day), 0.7 * float(rng.choice([0.7, 1.3])), source="short")
        assert forecast_from_history(conn, site, DAY).pv_source == PV_FROM_RECENT_PV


def test_a_day_uses_one_issue_as_the_api_shows_it_not_a_patchwork(db_url: str) -> None:
    _rng, history, indices = _changing_sky(22)
    with psycopg.connect(db_url) as conn:
        _site(conn, "patch-c", indices)
        (site,) = load_dr_sites(conn, ["patch-c"])
        for day in [*history[-RECORD_DAYS:], DAY]:
            _issue(conn, day, _day_ahead(day), indices.get(day, TARGET_INDEX))
        assert forecast_from_history(conn, site, DAY).pv_source == PV_FROM_WEATHER_FORECAST
        # A later issue before midnight that covers only the night: the day's issue is now that one, whose
        # daylight slots are missing, so the site keeps last week's index (slots of the older issue are not mixed in).
        _issue(conn, DAY, datetime.combine(DAY - timedelta(days=1), time(23), JST), 0.0, slots=1)
        assert forecast_from_history(conn, site, DAY).pv_source == PV_FROM_RECENT_PV


def test_the_scheduler_exports_when_the_newest_issue_was_made(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        scheduler = Scheduler(conn, RecordingSink())
        gauge = "vpp_dr_weather_forecast_latest_issue_timestamp_seconds"
        now = datetime.combine(DAY, time(12), JST)
        scheduler.tick(now)
        assert scheduler.metrics.registry.get_sample_value(gauge) == 0.0  # never fed: the alert ignores 0
        issued = datetime.combine(DAY, time(9), JST)
        _issue(conn, DAY + timedelta(days=1), issued, 0.5)
        scheduler.tick(now + timedelta(minutes=1))  # looked a minute ago: not yet
        assert scheduler.metrics.registry.get_sample_value(gauge) == 0.0
        scheduler.tick(now + timedelta(minutes=5))
        assert scheduler.metrics.registry.get_sample_value(gauge) == issued.timestamp()
