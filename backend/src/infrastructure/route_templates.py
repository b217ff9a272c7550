"""Route templates: which declared route (`/api/v1/users/{username}`) a request matched.

FastAPI (0.16x) no longer flattens included routers: `scope["route"]` is the `APIRoute` as its
own router declared it (`/{username}`), without the prefixes of the routers that include it.
The full templates come from the public `fastapi.routing.iter_route_contexts`, computed once
per application and looked up by route object.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import Scope

_STATE_KEY = "route_templates"


def route_templates(app: Any) -> dict[int, list[str]]:
    """`id(route)` -> the full templates it is served under (usually exactly one)."""
    templates: dict[int, list[str]] = {}
    for context in iter_route_contexts(app.routes):
        if context.path_format:
            templates.setdefault(id(context.original_route), []).append(context.path_format)
    return templates


def all_route_templates(app: Any) -> set[str]:
    return {template for group in route_templates(app).values() for template in group}


def route_template(request: Request) -> str:
    """The full template of the route this request matched; the raw path when none did."""
    return scope_route_template(request.scope) or request.url.path


def scope_route_template(scope: Scope) -> str | None:
    """`route_template` for a raw ASGI scope (middleware); None when no route matched."""
    route = scope.get("route")
    if route is None:
        return None
    state = scope["app"].state
    templates: dict[int, list[str]] | None = getattr(state, _STATE_KEY, None)
    if templates is None or id(route) not in templates:  # first request, or routes added
        templates = route_templates(scope["app"])
        setattr(state, _STATE_KEY, templates)
    candidates = templates.get(id(route))
    if not candidates:
        return str(getattr(route, "path", scope["path"]))
    if len(candidates) == 1:
        return candidates[0]
    path = scope["path"]  # one route included under several prefixes
    return next((t for t in candidates if compile_path(t)[0].match(path)), candidates[0])
