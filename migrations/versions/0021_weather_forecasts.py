"""Irradiance forecasts the utility buys: global horizontal irradiance per 30-minute slot at grid points.

One row in ``weather_forecasts`` per issue (point, source, issue time; posting the same issue again replaces
its slots, so a feeder can retry), its slots in ``weather_forecast_slots``. A site's PV forecast for a day
uses the latest issue before that day began (JST) at the nearest point within 25 km, once the forecast's
record at the site beats last week's index (`vpp/domain/weather_forecast.py`).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
CREATE TABLE weather_forecasts (
    id           bigserial PRIMARY KEY,
    latitude     double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude    double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    source       text NOT NULL,
    issued_at    timestamptz NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (latitude, longitude, source, issued_at)
);
CREATE TABLE weather_forecast_slots (
    forecast_id  bigint NOT NULL REFERENCES weather_forecasts (id) ON DELETE CASCADE,
    slot_start   timestamptz NOT NULL,
    ghi_w_m2     double precision NOT NULL CHECK (ghi_w_m2 >= 0),
    PRIMARY KEY (forecast_id, slot_start)
);
CREATE INDEX weather_forecast_slots_by_slot ON weather_forecast_slots (slot_start);
"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS weather_forecast_slots; DROP TABLE IF EXISTS weather_forecasts")
