"""Request and response bodies of the irradiance forecast endpoints (``routes/weather.py``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.api.schemas import JstDatetime
from vpp.domain.slots import SLOT
from vpp.domain.weather_forecast import GHI_MAX_W_M2

__all__ = ["WeatherForecastIn", "WeatherForecastOut", "WeatherSlot"]

MAX_SLOTS = 7 * 48  # a week ahead: longer than any day-ahead product
Latitude = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, examples=[35.57])]
Longitude = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, examples=[139.6])]


class WeatherSlot(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: JstDatetime = Field(description="Start of the 30-minute slot (JST half hour), with its offset")
    ghi_w_m2: float = Field(
        ge=0, le=GHI_MAX_W_M2, allow_inf_nan=False, description="Global horizontal irradiance, mean over the slot"
    )

    @field_validator("start")
    @classmethod
    def _on_a_slot(cls, start: AwareDatetime) -> AwareDatetime:
        if (start - start.replace(minute=0, second=0, microsecond=0)) % SLOT != timedelta(0):
            raise ValueError("must start a 30-minute slot (hh:00 or hh:30)")
        return start


class WeatherForecastIn(BaseModel):
    """One issue of an irradiance forecast at one grid point. Posting the same issue (point, source, issued_at)
    again replaces its slots."""

    model_config = ConfigDict(extra="forbid")
    latitude: Latitude
    longitude: Longitude
    source: str = Field(min_length=1, max_length=200, examples=["JMA MSM via provider X"])
    issued_at: AwareDatetime = Field(description="When the provider issued it: a day uses the latest issued before "
                                                 "the day began (JST)")  # fmt: skip
    slots: list[WeatherSlot] = Field(min_length=1, max_length=MAX_SLOTS)

    @field_validator("slots")
    @classmethod
    def _each_slot_once(cls, slots: list[WeatherSlot]) -> list[WeatherSlot]:
        seen: set[object] = set()
        for k, slot in enumerate(slots):
            if slot.start in seen:
                raise ValueError(f"slot {k} ({slot.start.isoformat()}) is given twice")
            seen.add(slot.start)
        return slots


class WeatherForecastOut(BaseModel):
    id: int
    latitude: float
    longitude: float
    source: str
    issued_at: JstDatetime
    slots: list[WeatherSlot]
