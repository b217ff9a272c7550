"""A route index in front of FastAPI's router: the route FastAPI would pick, in a few lookups.

FastAPI (0.16x) matches a request by trying the application's routes one by one, and each
included router's routes one by one, twice per request (once to pick the router, once to pick
its route), with a regex and a few scope writes per try: about a tenth of a profile read's
CPU, and more the further down the list a route is. `RouteIndex` finds the same route from
the request path with dictionary lookups (the exact path, then the path's `/`-prefixes) and a
regex on the few routes that can match, then hands the request to that route's ASGI app with
the scope FastAPI's routing would have left (`route`, `endpoint`, `path_params`, and FastAPI's
own `fastapi` scope keys), so dependencies, overrides, exception handlers and `request.scope`
readers see no difference.

It decides only what it can decide exactly, and hands everything else to FastAPI's own router
unchanged (`fallback`):
- the first route, in FastAPI's order, whose path and method match is an API route or a plain
  route, on the application or in an included router (at any depth, without form limits); a
  mount, a host route or any other kind found first means FastAPI decides;
- no route matches the path and method (404, 405: FastAPI's answers), a websocket or
  lifespan message, a `root_path` in the scope, or FastAPI's request telemetry switched on.

Hand-written because this is the product's per-request budget (issue 6) and neither FastAPI
nor Starlette offers an indexed router. It reads FastAPI's routing internals (`_IncludedRouter`
and its effective route contexts, the `fastapi` scope keys), pinned by `uv.lock`; the tests in
`tests/unit/test_route_index.py` compare its choice with FastAPI's own for every route of the
application and fail on an upgrade that changes them. The index is rebuilt whenever a route is
added to the application or to any router it includes (the route versions FastAPI keeps for
its own caches, and the number of the application's routes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter, _IncludedRouter
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

# FastAPI's own scope keys (fastapi.routing: _FASTAPI_SCOPE_KEY and the two below).
_FASTAPI_SCOPE = "fastapi"
_INCLUDED_ROUTER = "included_router"
_EFFECTIVE_ROUTE_CONTEXT = "effective_route_context"


@dataclass(slots=True)
class _Entry:
    """One route in FastAPI's order: how to match it and, when `app` is set, how to serve it
    as FastAPI would. An entry without `app` (a mount) sends the request to FastAPI's router."""

    order: int
    regex: Any  # re.Pattern[str]
    convertors: dict[str, Any]
    methods: frozenset[str] | None
    app: ASGIApp | None = field(default=None, repr=False)
    endpoint: Any = field(default=None, repr=False)
    route: Any = None  # scope["route"]; None for a plain Starlette route (it sets none)
    included_router: Any = field(default=None, repr=False)  # the innermost _IncludedRouter
    context: Any = field(default=None, repr=False)  # its effective route context


class RouteIndex:
    """Pure ASGI: dispatch an HTTP request to the route FastAPI's `router` would pick.

    Install with `install_route_index(app)`; the index takes the router's place as its
    middleware stack and keeps the router's own app as `fallback`."""

    def __init__(self, router: APIRouter, fallback: ASGIApp) -> None:
        self.router = router
        self.fallback = fallback
        self._key: tuple[int, int] | None = None
        self._routers: tuple[APIRouter, ...] = (router,)  # the application's and included ones
        self._exact: dict[str, tuple[_Entry, ...]] = {}
        self._prefixed: dict[str, tuple[_Entry, ...]] = {}
        self._everywhere: tuple[_Entry, ...] = ()  # routes FastAPI may pick for any path
        self._usable = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path") or "fastapi.telemetry" in scope:
            await self.fallback(scope, receive, send)
            return
        if self._key != (sum(map(_VERSION, self._routers)), len(self.router.routes)):
            self._build()
        found = self._find(scope) if self._usable else None
        if found is None:
            await self.fallback(scope, receive, send)
            return
        entry, path_params = found
        if "router" not in scope:
            scope["router"] = self.router
        if entry.included_router is not None:
            fastapi_scope = scope.get(_FASTAPI_SCOPE)
            if fastapi_scope is None:
                fastapi_scope = scope[_FASTAPI_SCOPE] = {}
            fastapi_scope[_INCLUDED_ROUTER] = entry.included_router
            fastapi_scope[_EFFECTIVE_ROUTE_CONTEXT] = entry.context
        existing = scope.get("path_params")
        if existing:
            path_params = {**existing, **path_params}
        scope["endpoint"] = entry.endpoint
        scope["path_params"] = path_params
        if entry.route is not None:
            scope["route"] = entry.route
        assert entry.app is not None
        await entry.app(scope, receive, send)

    def _find(self, scope: Scope) -> tuple[_Entry, dict[str, Any]] | None:
        """The first route in FastAPI's order that matches the path and the method, if it is
        one this index serves; None when FastAPI's router must decide."""
        path: str = scope["path"]
        candidates = [*self._exact.get(path, ()), *self._everywhere]
        slash = path.find("/")
        while slash != -1:
            candidates += self._prefixed.get(path[: slash + 1], ())
            slash = path.find("/", slash + 1)
        if not candidates:
            return None
        candidates.sort(key=_order)
        method = scope["method"]
        for entry in candidates:
            match = entry.regex.match(path)
            if match is None:
                continue
            if entry.app is None:  # a mount (or a route kind this index does not serve)
                return None
            if entry.methods is not None and method not in entry.methods:
                continue  # FastAPI goes on looking for a full match (a 405 otherwise)
            params = match.groupdict()
            for name, value in params.items():
                params[name] = entry.convertors[name].convert(value)
            return entry, params
        return None

    def _build(self) -> None:
        entries: list[_Entry] = []
        routers: list[APIRouter] = [self.router]
        usable = not self.router.form_limits
        for route in self.router.routes:
            if isinstance(route, _IncludedRouter):
                usable = _add_included(route, entries, routers) and usable
            elif isinstance(route, Route):  # APIRoute is a Route
                entries.append(_direct(len(entries), route))
            elif isinstance(route, Mount):
                entries.append(_Entry(len(entries), route.path_regex, {}, None))
            else:
                usable = False  # a host route, a websocket route or a custom BaseRoute
        exact: dict[str, list[_Entry]] = {}
        prefixed: dict[str, list[_Entry]] = {}
        everywhere: list[_Entry] = []
        for entry in entries:
            pattern: str = entry.regex.pattern
            literal = _literal_prefix(pattern)
            if literal is not None and pattern == f"^{re.escape(literal)}$":
                exact.setdefault(literal, []).append(entry)
            elif literal is not None and pattern.startswith(f"^{re.escape(literal)}(?P<"):
                # "^/users/(?P<username>[^/]+)$": any path under "/users/"
                prefixed.setdefault(literal[: literal.rfind("/") + 1], []).append(entry)
            else:  # a regex of another shape: tried on every path
                everywhere.append(entry)
        self._exact = {path: tuple(group) for path, group in exact.items()}
        self._prefixed = {prefix: tuple(group) for prefix, group in prefixed.items()}
        self._everywhere = tuple(everywhere)
        self._usable = usable
        # What FastAPI's own route version counts (every router's changes), without walking
        # the tree on every request: a route added anywhere rebuilds the index.
        self._routers = tuple(routers)
        self._key = (sum(map(_VERSION, routers)), len(self.router.routes))


def install_route_index(app: FastAPI) -> None:
    """Put a `RouteIndex` in front of `app`'s router (inside FastAPI's exception handling and
    every middleware, where the router itself sits)."""
    router = app.router
    router.middleware_stack = RouteIndex(router, router.middleware_stack)


_VERSION = attrgetter("_routes_version")  # bumped by FastAPI on every change to a router


def _order(entry: _Entry) -> int:
    return entry.order


def _direct(order: int, route: Route) -> _Entry:
    """A route declared on the application itself (Starlette's `Route.matches` and `handle`)."""
    methods = frozenset(route.methods) if route.methods else None
    return _Entry(
        order,
        route.path_regex,
        route.param_convertors,
        methods,
        app=route.app,
        endpoint=route.endpoint,
        route=route if isinstance(route, APIRoute) else None,
    )


def _add_included(
    included: _IncludedRouter, entries: list[_Entry], routers: list[APIRouter]
) -> bool:
    """The routes of a router included in the application (or in a router included there), as
    FastAPI serves them there (with the inclusions' prefixes, dependencies and responses), in
    FastAPI's order: a nested router's routes where the router is; False when an inclusion
    holds something this index cannot serve exactly."""
    routers.append(included.original_router)
    if included.include_context.form_limits:
        return False
    usable = True
    for candidate in included.effective_candidates():
        if isinstance(candidate, _IncludedRouter):  # a router included in this one
            usable = _add_included(candidate, entries, routers) and usable
            continue
        original = candidate.original_route
        if isinstance(original, APIRoute):
            entries.append(
                _Entry(
                    len(entries),
                    candidate.path_regex,
                    candidate.param_convertors,
                    frozenset(candidate.methods) if candidate.methods else None,
                    app=candidate.app,
                    endpoint=candidate.endpoint,
                    route=original,
                    included_router=included,
                    context=candidate,
                )
            )
        else:
            starlette_route = candidate.starlette_route
            regex = getattr(starlette_route, "path_regex", None)
            if regex is None:
                usable = False
                continue
            entries.append(_Entry(len(entries), regex, {}, None))  # FastAPI serves it
    return usable


_REGEX_SPECIALS = frozenset("\\.^$*+?{}[]|()")


def _literal_prefix(pattern: str) -> str | None:
    """The literal start of a route regex as Starlette's `compile_path` writes them
    (`^/users/(?P<u>...)$` -> `/users/`); None when the pattern does not start with `^/`.
    The caller checks that the pattern is that literal, escaped, then a group or the end."""
    if not pattern.startswith("^/"):
        return None
    literal: list[str] = []
    index = 1
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            literal.append(pattern[index + 1])
            index += 2
            continue
        if char in _REGEX_SPECIALS:
            break
        literal.append(char)
        index += 1
    return "".join(literal)
