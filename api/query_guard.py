"""Unknown query parameters are a 422 naming them, not silently ignored.

`GET /events?stauts=FAILED` would otherwise list every event as if the filter had matched;
a typo must show. Each route's known parameters are those its dependency tree declares.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameter names (aliases) a route and its dependencies read."""
    names: set[str] = set()
    stack = [dependant]
    while stack:
        current = stack.pop()
        names.update(field.alias for field in current.query_params)
        stack.extend(current.dependencies)
    return frozenset(names)


async def reject_unknown_query(request: Request) -> None:
    """An application-wide dependency: every API route gets it."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = route.__dict__.get("_herald_query")
    if known is None:
        known = declared_query(route.dependant)
        route.__dict__["_herald_query"] = known
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        expected = ", ".join(sorted(known)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"unknown query parameter (this operation takes: {expected})",
                    "type": "query_unknown",
                }
                for name in unknown
            ]
        )
