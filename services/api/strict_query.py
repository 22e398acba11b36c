"""Refuse query parameters an endpoint does not take, instead of silently ignoring them.

A caller who writes ``format=csv`` where there is no CSV, or ``regoin=kawasaki``, would otherwise get
a 200 that looks like an answer to the question they asked. The 422 names the parameter and lists
the ones the endpoint takes.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from services.api.errors import ProblemError

__all__ = ["reject_unknown_query"]


def _query_names(dependant: Dependant) -> set[str]:
    # The endpoint's own query parameters and those of its dependencies (e.g. a shared `region`).
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def reject_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    # A walk over a handful of dependants; APIRoute is unhashable, so there is nothing to key a cache on.
    allowed = _query_names(route.dependant)
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ProblemError(
            422,
            f"query.{unknown[0]}: this endpoint does not take {unknown[0]!r}{more}; it takes {takes}",
            slug="validation",
            title="Invalid request",
            extra={
                "errors": [
                    {"loc": ["query", name], "msg": "unknown query parameter", "type": "extra_forbidden"}
                    for name in unknown
                ]
            },
        )
