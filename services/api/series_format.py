"""Pagination and CSV export shared by every time series endpoint."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response

__all__ = ["CSV_RESPONSE", "FormatQuery", "LimitQuery", "OffsetQuery", "csv_response", "next_link", "split_page"]

LimitQuery = Annotated[int, Query(ge=1, le=10_000, description="Page size")]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")]
FormatQuery = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "The page, as JSON or CSV"}
}


def split_page(rows: list[Any], limit: int, offset: int) -> tuple[list[Any], int | None]:
    """Rows were fetched with limit + 1: keep `limit` and say where the next page starts."""
    if len(rows) > limit:
        return rows[:limit], offset + limit
    return rows, None


def next_link(request: Request, next_offset: int | None) -> dict[str, str]:
    if next_offset is None:
        return {}
    url = request.url.include_query_params(offset=next_offset)
    return {"Link": f'<{url}>; rel="next"'}


def _cell(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[object]], filename: str, headers: dict[str, str]
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={**headers, "Content-Disposition": f'attachment; filename="{filename}"'},
    )
