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
  route, on the application or in an included router (at any depth), of FastAPI's and
  Starlette's own classes (no subclass overriding `matches` or `handle`, no router with form
  limits); FastAPI decides when a mount, a host route, a custom route class or router, or a
  regex compiled with flags comes before it;
- no route matches the path and method (404, 405: FastAPI's answers), a websocket or
  lifespan message, a path ending in a newline (a `$` in a route regex matches before it),
  or FastAPI's request telemetry for the request.

Hand-written because this is the product's per-request budget (issue 6) and neither FastAPI
nor Starlette offers an indexed router. It reads FastAPI's routing internals (`_IncludedRouter`
and its effective route contexts, the `fastapi` scope keys), pinned by `uv.lock`; the tests in
`tests/unit/infrastructure/test_route_index.py` compare its answers with FastAPI's own, and
its choice with FastAPI's for every route of the application, so an upgrade that changes them
fails there. `install_route_index` installs it only on a router without middleware or a body
limit of its own (they would sit between the index and the routes).

The index is rebuilt when a route is added to the application or to any router it includes
(`add_api_route`, `include_router` and the like: the route versions FastAPI keeps for its own
caches) and when the application's own route list changes in any way. Editing the `routes`
list of an included router by hand after the first request is not seen: add routes through
the router's methods.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIRouter, APIWebSocketRoute, _IncludedRouter
from starlette._utils import get_route_path
from starlette.routing import Mount, Route, WebSocketRoute
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
    path_format: str | None  # its template ("/users/{username}"); None: it may match any path
    convertors: dict[str, Any]
    methods: frozenset[str] | None
    app: ASGIApp | None = field(default=None, repr=False)
    endpoint: Any = field(default=None, repr=False)
    route: Any = None  # scope["route"]; None for a plain Starlette route (it sets none)
    included_router: Any = field(default=None, repr=False)  # the innermost _IncludedRouter
    context: Any = field(default=None, repr=False)  # its effective route context
    after_included: bool = False  # an application route after an included router


@dataclass(frozen=True, slots=True)
class _Tables:
    exact: dict[str, tuple[_Entry, ...]]  # "/users/me" -> the routes of exactly that path
    prefixed: dict[str, tuple[_Entry, ...]]  # "/users/" -> the routes with parameters there
    everywhere: tuple[_Entry, ...]  # routes of another shape, tried on every path
    usable: bool


class RouteIndex:
    """Pure ASGI: dispatch an HTTP request to the route FastAPI's `router` would pick.

    Install with `install_route_index(app)`; the index takes the router's place as its
    middleware stack and keeps the router's own app as `fallback`."""

    def __init__(self, router: APIRouter, fallback: ASGIApp) -> None:
        self.router = router
        self.fallback = fallback
        self._key: tuple[int, tuple[int, ...]] | None = None
        self._routers: tuple[APIRouter, ...] = (router,)  # the application's and included ones
        self._tables = _Tables({}, {}, (), usable=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("fastapi.telemetry") is not None:
            await self.fallback(scope, receive, send)
            return
        if self._key != (sum(map(_VERSION, self._routers)), tuple(map(id, self.router.routes))):
            self._build()
        path = get_route_path(scope)
        tables = self._tables  # one read: a rebuild elsewhere swaps the whole set at once
        found = self._find(tables, path, scope["method"]) if tables.usable else None
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
        elif entry.after_included and _FASTAPI_SCOPE not in scope:
            scope[_FASTAPI_SCOPE] = {}  # FastAPI's scan left it, trying included routers
        existing = scope.get("path_params")
        if existing:
            path_params = {**existing, **path_params}
        scope["endpoint"] = entry.endpoint
        scope["path_params"] = path_params
        if entry.route is not None:
            scope["route"] = entry.route
        assert entry.app is not None
        await entry.app(scope, receive, send)

    @staticmethod
    def _find(tables: _Tables, path: str, method: str) -> tuple[_Entry, dict[str, Any]] | None:
        """The first route in FastAPI's order that matches the path and the method, if it is
        one this index serves; None when FastAPI's router must decide."""
        if path[-1:] == "\n":  # "^/users/me$" matches "/users/me\n": not an exact lookup
            return None
        candidates = [*tables.exact.get(path, ()), *tables.everywhere]
        slash = path.find("/")
        while slash != -1:
            candidates += tables.prefixed.get(path[: slash + 1], ())
            slash = path.find("/", slash + 1)
        if not candidates:
            return None
        candidates.sort(key=_ORDER)
        for entry in candidates:
            match = entry.regex.match(path)
            if match is None:
                continue
            if entry.app is None:  # a mount (or a route kind this index does not serve)
                return None
            # FastAPI converts the parameters of every route whose path matches, the ones
            # whose method does not included (a converter may raise).
            params = match.groupdict()
            for name, value in params.items():
                params[name] = entry.convertors[name].convert(value)
            if entry.methods is not None and method not in entry.methods:
                continue  # FastAPI goes on looking for a full match (a 405 otherwise)
            return entry, params
        return None

    def _build(self) -> None:
        routes = tuple(self.router.routes)
        entries: list[_Entry] = []
        routers: list[APIRouter] = [self.router]
        usable = not self.router.form_limits
        after_included = False
        for route in routes:
            if isinstance(route, _IncludedRouter):
                _add_included(route, entries, routers)
                after_included = True
            elif isinstance(route, Route) and _plain(route):
                entries.append(_direct(len(entries), route, after_included))
            elif isinstance(route, Mount):
                entries.append(_Entry(len(entries), route.path_regex, route.path_format, {}, None))
            elif not isinstance(route, WebSocketRoute):  # those never match HTTP requests
                # A host route, a custom route class: it may match any path its own way.
                entries.append(_opaque(len(entries)))
        exact: dict[str, list[_Entry]] = {}
        prefixed: dict[str, list[_Entry]] = {}
        everywhere: list[_Entry] = []
        for entry in entries:
            # The template's literal start, when the regex is exactly what Starlette's
            # `compile_path` makes of the template (no flags, nothing set by hand).
            pattern: str = entry.regex.pattern
            template = entry.path_format or ""
            literal = template.partition("{")[0]
            if not literal.startswith("/") or entry.regex.flags != _PLAIN_FLAGS:
                everywhere.append(entry)
            elif literal == template and pattern == f"^{re.escape(literal)}$":
                exact.setdefault(literal, []).append(entry)
            elif literal != template and pattern.startswith(f"^{re.escape(literal)}(?P<"):
                # "/users/{username}": any path under "/users/"
                prefixed.setdefault(literal[: literal.rfind("/") + 1], []).append(entry)
            else:  # a regex of another shape: tried on every path
                everywhere.append(entry)
        self._tables = _Tables(
            {path: tuple(group) for path, group in exact.items()},
            {prefix: tuple(group) for prefix, group in prefixed.items()},
            tuple(everywhere),
            usable=usable,
        )
        # What FastAPI's own route version counts (every router's changes), without walking
        # the tree on every request: a route added anywhere rebuilds the index.
        self._routers = tuple(routers)
        self._key = (sum(map(_VERSION, routers)), tuple(map(id, routes)))


def install_route_index(app: FastAPI) -> bool:
    """Put a `RouteIndex` in front of `app`'s router (inside FastAPI's exception handling and
    every middleware, where the router itself sits); False, and nothing installed, when the
    router has middleware or a body limit of its own (`FastAPI(max_body_size=...)`), which
    must stay between it and every route."""
    router = app.router
    if router.middleware_stack != router.app:
        return False
    router.middleware_stack = RouteIndex(router, router.middleware_stack)
    return True


_VERSION = attrgetter("_routes_version")  # bumped by FastAPI on every change to a router
_PLAIN_FLAGS = re.compile("^/$").flags  # a regex compiled without flags
_ANY_PATH = re.compile("")
_ORDER = attrgetter("order")


def _plain(route: Route) -> bool:
    """A route matched and handled as FastAPI's and Starlette's own classes do."""
    base = APIRoute if isinstance(route, APIRoute) else Route
    kind = type(route)
    return kind.matches is base.matches and kind.handle is base.handle


def _plain_router(router: APIRouter) -> bool:
    kind = type(router)
    return kind.matches is APIRouter.matches and kind.handle is APIRouter.handle


def _direct(order: int, route: Route, after_included: bool) -> _Entry:
    """A route declared on the application itself (Starlette's `Route.matches` and `handle`)."""
    methods = frozenset(route.methods) if route.methods else None
    return _Entry(
        order,
        route.path_regex,
        route.path_format,
        route.param_convertors,
        methods,
        app=route.app,
        endpoint=route.endpoint,
        route=route if isinstance(route, APIRoute) else None,
        after_included=after_included,
    )


def _add_included(
    included: _IncludedRouter, entries: list[_Entry], routers: list[APIRouter]
) -> None:
    """The routes of a router included in the application (or in a router included there), as
    FastAPI serves them there (with the inclusions' prefixes, dependencies and responses), in
    FastAPI's order: a nested router's routes where the router is. A router that matches or
    handles its own way, or has form limits, is one opaque entry: FastAPI decides past it."""
    routers.append(included.original_router)
    if included.include_context.form_limits or not _plain_router(included.original_router):
        entries.append(_opaque(len(entries)))
        return
    for candidate in included.effective_candidates():
        if isinstance(candidate, _IncludedRouter):  # a router included in this one
            _add_included(candidate, entries, routers)
            continue
        original = candidate.original_route
        if isinstance(original, APIRoute) and _plain(original):
            entries.append(
                _Entry(
                    len(entries),
                    candidate.path_regex,
                    candidate.path_format,
                    candidate.param_convertors,
                    frozenset(candidate.methods) if candidate.methods else None,
                    app=candidate.app,
                    endpoint=candidate.endpoint,
                    route=original,
                    included_router=included,
                    context=candidate,
                )
            )
        elif isinstance(original, (WebSocketRoute, APIWebSocketRoute)):
            continue  # never matches an HTTP request
        else:  # a mount or a plain route (FastAPI serves it), a custom route class
            starlette_route = candidate.starlette_route
            regex = getattr(starlette_route, "path_regex", None)
            if regex is None or isinstance(original, APIRoute):
                entries.append(_opaque(len(entries)))
            else:
                template = getattr(starlette_route, "path_format", None)
                entries.append(_Entry(len(entries), regex, template, {}, None))


def _opaque(order: int) -> _Entry:
    """A route that may match any path (its own way): FastAPI decides whenever it comes before
    the route the index found."""
    return _Entry(order, _ANY_PATH, None, {}, None)
