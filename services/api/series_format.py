"""Pagination, CSV export and the time zone of timestamps, shared by every time series endpoint.

Timestamps a person reads or downloads are Japan time (``+09:00``) by default, as the city works in
JST; ``tz=UTC`` gives UTC (``+00:00``) instead. Either way they are RFC 3339 with an explicit offset.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import Response

from vpp.domain.slots import JST

__all__ = [
    "CSV_RESPONSE",
    "FormatQuery",
    "LimitQuery",
    "OffsetQuery",
    "TzQuery",
    "csv_response",
    "in_zone",
    "in_zone_deep",
    "localize_rows",
    "next_link",
    "split_page",
    "zone",
]

LimitQuery = Annotated[int, Query(ge=1, le=10_000, description="Page size")]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip")]
FormatQuery = Annotated[Literal["json", "csv"], Query(description="json (default) or csv")]
TzQuery = Annotated[
    Literal["Asia/Tokyo", "JST", "UTC"],
    Query(description="Time zone of the timestamps in the answer (JSON and CSV): Asia/Tokyo (default, +09:00) or UTC"),
]

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


def zone(tz: str) -> tzinfo:
    """The zone a `TzQuery` value names."""
    return UTC if tz == "UTC" else JST


def in_zone(value: object, where: tzinfo) -> object:
    """`value` expressed in `where` if it is an aware datetime; anything else unchanged."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(where)
    return value


def in_zone_deep(value: Any, where: tzinfo) -> Any:
    """`value` with every aware datetime inside (dicts, lists, tuples) expressed in `where`."""
    if isinstance(value, dict):
        return {key: in_zone_deep(inner, where) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [in_zone_deep(inner, where) for inner in value]
    return in_zone(value, where)


def localize_rows(rows: Iterable[Sequence[Any]], where: tzinfo) -> list[tuple[Any, ...]]:
    """Rows with every aware datetime cell expressed in `where` (the database answers in UTC)."""
    return [tuple(in_zone(v, where) for v in row) for row in rows]


def _cell(value: object, where: tzinfo) -> object:
    if isinstance(value, datetime):
        return (value.astimezone(where) if value.tzinfo is not None else value).isoformat()
    return "" if value is None else value


def csv_response(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    filename: str,
    headers: dict[str, str],
    *,
    where: tzinfo = JST,
) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v, where) for v in row] for row in rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={**headers, "Content-Disposition": f'attachment; filename="{filename}"'},
    )
