"""Figures Kawasaki City has published, shipped with the platform so a fresh installation starts with them.

The CSV files keep their source lines (``#`` comments). ``published_csv(name)`` reads one as text; it
works from a checkout and from an installed wheel alike.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["CAPACITY_CSV", "LEADING_AREA_FY_CSV", "published_csv"]

LEADING_AREA_FY_CSV = "kawasaki_leading_area_fy.csv"  # civil-sector renewable supply, savings and demand per FY
CAPACITY_CSV = "kawasaki_renewable_capacity_kw.csv"  # renewable generation capacity by source (FY2020)


def published_csv(name: str) -> str:
    return files(__package__).joinpath(name).read_text(encoding="utf-8")
