"""Irradiance forecasts the utility buys: the day-ahead input of the sites' PV forecasts."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, status

from services.api.deps import AggregateReaderDep, ConnDep, OperatorDep
from services.api.errors import ProblemError
from services.api.weather_schemas import WeatherForecastIn, WeatherForecastOut, WeatherSlot
from vpp.postgres.weather_forecasts import StoredForecast, forecast_for_day, store_forecast

router = APIRouter(tags=["weather"])


def _out(stored: StoredForecast) -> WeatherForecastOut:
    return WeatherForecastOut(
        id=stored.id,
        latitude=stored.latitude,
        longitude=stored.longitude,
        source=stored.source,
        issued_at=stored.issued_at,
        slots=[WeatherSlot(start=start, ghi_w_m2=ghi) for start, ghi in stored.slots],
    )


@router.post(
    "/api/v1/weather/forecasts",
    response_model=WeatherForecastOut,
    status_code=status.HTTP_201_CREATED,
    summary="Store an irradiance forecast issue (global horizontal irradiance per slot at a grid point)",
)
async def post_forecast(conn: ConnDep, _principal: OperatorDep, body: WeatherForecastIn) -> WeatherForecastOut:
    slots = sorted((slot.start, slot.ghi_w_m2) for slot in body.slots)
    forecast_id = await store_forecast(conn, body.latitude, body.longitude, body.source, body.issued_at, slots)
    await conn.commit()
    return WeatherForecastOut(
        id=forecast_id,
        latitude=body.latitude,
        longitude=body.longitude,
        source=body.source,
        issued_at=body.issued_at,
        slots=[WeatherSlot(start=start, ghi_w_m2=ghi) for start, ghi in slots],
    )


@router.get(
    "/api/v1/weather/forecasts/day-ahead",
    response_model=WeatherForecastOut,
    summary="The issue a site at this place plans a JST day with: the latest issued before the day began, at the "
    "nearest grid point within 25 km",
)
async def day_ahead(
    conn: ConnDep,
    _principal: AggregateReaderDep,
    latitude: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
    longitude: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
    day: Annotated[date, Query(description="JST day")],
) -> WeatherForecastOut:
    stored = await forecast_for_day(conn, latitude, longitude, day)
    if stored is None:
        raise ProblemError(
            404, f"no forecast issued before {day.isoformat()} within 25 km of ({latitude}, {longitude})"
        )
    return _out(stored)
