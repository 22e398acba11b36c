"""Parsers for the declared-statistics CSV files (format of ../shared/data/*.csv).

Lines starting with ``#`` are comments. Errors name the line and column so a user can fix the file.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass

__all__ = ["CapacityFigure", "CsvError", "FiscalYearFigure", "parse_capacity_csv", "parse_fiscal_year_csv"]

_FY_COLUMN = re.compile(r"fy(\d{4})_actual_kw")
_MAX_ROWS = 10_000


class CsvError(ValueError):
    """A CSV upload that cannot be imported; the message says where and why."""


@dataclass(frozen=True, slots=True)
class FiscalYearFigure:
    fiscal_year: int
    renewable_supply_kwh: float
    saving_kwh: float
    demand_kwh: float


@dataclass(frozen=True, slots=True)
class CapacityFigure:
    category: str
    fiscal_year: int
    capacity_kw: float


def _rows(body: str) -> list[tuple[int, dict[str, str]]]:
    lines = [
        (n, line) for n, line in enumerate(body.splitlines(), start=1) if line.strip() and not line.startswith("#")
    ]
    if not lines:
        raise CsvError("the CSV holds no header line")
    if len(lines) > _MAX_ROWS:
        raise CsvError(f"the CSV has more than {_MAX_ROWS} rows")
    reader = csv.reader(io.StringIO("\n".join(line for _, line in lines)))
    try:
        table = list(reader)
    except csv.Error as exc:
        raise CsvError(f"the CSV cannot be read: {exc}") from None
    header = [h.strip() for h in table[0]]
    out = []
    for (number, _), cells in zip(lines[1:], table[1:], strict=True):
        if len(cells) > len(header):
            raise CsvError(f"line {number}: {len(cells)} values for {len(header)} columns")
        out.append((number, {h: c.strip() for h, c in zip(header, cells, strict=False)}))
    return out


def _number(row: dict[str, str], column: str, line: int, *, required: bool = True) -> float:
    text = row.get(column, "")
    if text == "":
        if required:
            raise CsvError(f"line {line}: column {column!r} is missing or empty")
        return 0.0
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise CsvError(f"line {line}: column {column!r} must be a number; got {text!r}") from None
    if not math.isfinite(value) or value < 0 or value > 1e15:
        raise CsvError(f"line {line}: column {column!r} must be a non-negative number; got {text!r}")
    return value


def parse_fiscal_year_csv(body: str) -> list[FiscalYearFigure]:
    """Columns ``fiscal_year, renewable_supply_kwh, saving_kwh, civil_demand_kwh`` (others ignored)."""
    figures = []
    for line, row in _rows(body):
        year_text = row.get("fiscal_year", "")
        if not re.fullmatch(r"\d{4}", year_text) or not 1900 <= int(year_text) <= 2999:
            raise CsvError(f"line {line}: fiscal_year must be a four-digit year; got {year_text!r}")
        demand_column = "demand_kwh" if "demand_kwh" in row and "civil_demand_kwh" not in row else "civil_demand_kwh"
        figures.append(
            FiscalYearFigure(
                int(year_text),
                _number(row, "renewable_supply_kwh", line),
                _number(row, "saving_kwh", line, required=False),
                _number(row, demand_column, line),
            )
        )
    if not figures:
        raise CsvError("the CSV holds no data rows")
    return figures


def parse_capacity_csv(body: str) -> list[CapacityFigure]:
    """Columns ``source`` (the category) and one or more ``fyYYYY_actual_kw``; a ``total`` row is checked, not stored."""
    rows = _rows(body)
    if not rows:
        raise CsvError("the CSV holds no data rows")
    year_columns = {c: int(m[1]) for c in rows[0][1] if (m := _FY_COLUMN.fullmatch(c))}
    if not year_columns:
        raise CsvError("the CSV needs at least one column named like fy2020_actual_kw")
    figures: list[CapacityFigure] = []
    totals: dict[int, tuple[int, float]] = {}
    for line, row in rows:
        category = row.get("source", "")
        if not 1 <= len(category) <= 100:
            raise CsvError(f"line {line}: column 'source' must name a category of 1-100 characters")
        for column, year in year_columns.items():
            if row.get(column, "") == "":
                continue
            value = _number(row, column, line)
            if category == "total":
                totals[year] = (line, value)
            else:
                figures.append(CapacityFigure(category, year, value))
    for year, (line, total_kw) in totals.items():
        summed = math.fsum(f.capacity_kw for f in figures if f.fiscal_year == year)
        if abs(summed - total_kw) > 0.5:
            raise CsvError(
                f"line {line}: total {total_kw:g} kW for FY{year} differs from the categories' {summed:g} kW"
            )
    if not figures:
        raise CsvError("the CSV holds no capacity figures")
    return figures
