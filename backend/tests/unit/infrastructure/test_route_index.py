"""The route index picks the route FastAPI's own router picks, for every request, and serves it
with the same scope; what it cannot decide exactly goes to FastAPI's router.

Two identical applications, one with the index and one without, answer the same requests:
every answer (status, body, headers) must be the same. The endpoints answer what they saw:
their name, their path parameters, the route in the scope, the router-level dependency's
value and the dependency override in force.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import unquote

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Match
from starlette.testclient import TestClient

from src.infrastructure.route_index import RouteIndex, install_route_index

pytestmark = pytest.mark.unit


def _router_tag() -> str:
    return "items-router"


def _value() -> str:
    return "real"


Value = Annotated[str, Depends(_value)]


def _seen(request: Request, name: str, **extra: Any) -> dict[str, Any]:
    route = request.scope.get("route")
    return {
        "endpoint": name,
        "path_params": request.path_params,
        "route": getattr(route, "path", None),
        "fastapi_scope": "fastapi" in request.scope,
        "audited": request.scope.get("audited", False),
        **extra,
    }


class _Small(Convertor[int]):
    """A converter that refuses some values its regex accepts (FastAPI runs it on every route
    whose path matches, the method aside)."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        if int(value) > 100:
            raise ValueError("too big")
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("route_index_small", _Small())


class _AuditedRoute(APIRoute):
    """A route class that changes handling: the index must leave it to FastAPI."""

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        scope["audited"] = True
        await super().handle(scope, receive, send)


class _HeaderRoute(APIRoute):
    """A route class that changes matching (by a header): the index must leave it to FastAPI."""

    def matches(self, scope: Any) -> tuple[Match, Any]:
        match, child = super().matches(scope)
        wanted = (self.openapi_extra or {}).get("version")
        sent = dict(scope["headers"]).get(b"x-version", b"1").decode()
        if match == Match.FULL and wanted != sent:
            return Match.NONE, {}
        return match, child


def _forbid() -> None:
    raise HTTPException(status_code=403, detail="forbidden by a dependency")


def build_app(*, index: bool, redirect_slashes: bool = True) -> FastAPI:
    app = FastAPI(redirect_slashes=redirect_slashes)

    @app.get("/plain")
    async def plain(request: Request, value: Value) -> dict[str, Any]:
        return _seen(request, "plain", value=value)

    items = APIRouter(prefix="/items", dependencies=[Depends(_router_tag)])

    @items.get("/special")
    async def special(request: Request, tag: Annotated[str, Depends(_router_tag)]) -> Any:
        return _seen(request, "special", tag=tag)

    @items.get("/{item_id:int}")
    async def item(request: Request, item_id: int) -> Any:
        return _seen(request, "item", item_id=item_id)

    @items.put("/{item_id:int}")
    async def put_item(request: Request, item_id: int) -> Any:
        return _seen(request, "put_item", item_id=item_id)

    @items.get("/{item_id:int}/files/{path:path}")
    async def item_file(request: Request, item_id: int, path: str) -> Any:
        return _seen(request, "item_file", item_id=item_id, path=path)

    @items.get("/guarded", dependencies=[Depends(_forbid)])
    async def guarded(request: Request) -> Any:  # pragma: no cover - the dependency refuses
        return _seen(request, "guarded")

    # A second router sharing the prefix: its routes come after the first one's.
    other = APIRouter()

    @other.get("/items/{name}")
    async def named(request: Request, name: str) -> Any:
        return _seen(request, "named", value=name)

    @other.post("/items/special")
    async def post_special(request: Request) -> Any:
        return _seen(request, "post_special")

    # Nested inclusion: parent includes child, both under a prefix.
    parent = APIRouter(prefix="/parent")
    child = APIRouter(prefix="/child")

    @child.get("/{leaf}")
    async def leaf(request: Request, leaf: str) -> Any:
        return _seen(request, "leaf", leaf=leaf)

    @parent.get("/own")
    async def own(request: Request) -> Any:
        return _seen(request, "own")

    parent.include_router(child)

    async def starlette_endpoint(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"starlette {request.url.path}")

    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        response = JSONResponse({"endpoint": "mount", "path": scope["path"]})
        await response(scope, receive, send)

    audited = APIRouter(prefix="/audited", route_class=_AuditedRoute)

    @audited.get("/one")
    async def audited_one(request: Request) -> Any:
        return _seen(request, "audited_one")

    versioned = APIRouter(prefix="/versioned", route_class=_HeaderRoute)

    @versioned.get("/thing", openapi_extra={"version": "2"})
    async def thing_v2(request: Request) -> Any:
        return _seen(request, "thing_v2")

    @versioned.get("/thing", openapi_extra={"version": "1"})
    async def thing_v1(request: Request) -> Any:
        return _seen(request, "thing_v1")

    @app.post("/n/{n:route_index_small}")
    async def post_n(request: Request, n: int) -> Any:  # pragma: no cover - GET only
        return _seen(request, "post_n")

    @app.get("/n/{n}")
    async def get_n(request: Request, n: str) -> Any:
        return _seen(request, "get_n")

    app.include_router(items)
    app.include_router(other)
    app.include_router(parent)

    @app.get("/after-routers")  # FastAPI's scan through the routers leaves a "fastapi" key
    async def after_routers(request: Request) -> Any:
        return _seen(request, "after_routers")

    app.include_router(audited)
    app.include_router(versioned)
    app.add_route("/starlette", starlette_endpoint)

    app.mount("/static", mounted)

    @app.get("/static/shadowed")  # after the mount: FastAPI sends the request to the mount
    async def shadowed(request: Request) -> Any:  # pragma: no cover - never reached
        return _seen(request, "shadowed")

    if index:
        install_route_index(app)
    return app


REQUESTS = [
    ("GET", "/plain"),
    ("HEAD", "/plain"),
    ("POST", "/plain"),
    ("GET", "/plain/"),
    ("GET", "/items/special"),
    ("POST", "/items/special"),
    ("DELETE", "/items/special"),
    ("GET", "/items/42"),
    ("PUT", "/items/42"),
    ("PATCH", "/items/42"),
    ("GET", "/items/abc"),
    ("GET", "/items/42/files/a/b/c.txt"),
    ("GET", "/items/42/files/"),
    ("GET", "/items/guarded"),
    ("GET", "/items/"),
    ("GET", "/items"),
    ("GET", "/parent/own"),
    ("GET", "/parent/child/x"),
    ("POST", "/parent/child/x"),
    ("GET", "/parent/child/x/y"),
    ("GET", "/starlette"),
    ("HEAD", "/starlette"),
    ("POST", "/starlette"),
    ("GET", "/static/shadowed"),
    ("GET", "/static/file.css"),
    ("GET", "/nowhere"),
    ("GET", "/"),
    ("GET", "/items/%20spaced"),
    ("GET", "/plain%0A"),  # a route regex's `$` matches before a final newline
    ("GET", "/items/special%0A"),
    ("GET", "/audited/one"),
    ("GET", "/versioned/thing"),
    ("GET", "/n/50"),
    ("GET", "/n/500"),  # the POST route's converter refuses it: FastAPI's 500
    ("GET", "/after-routers"),
]


def _answer(app: FastAPI, method: str, path: str) -> tuple[int, bytes, list[tuple[str, str]]]:
    client = TestClient(
        app, base_url="http://test", follow_redirects=False, raise_server_exceptions=False
    )
    response = client.request(method, path)
    return response.status_code, response.content, sorted(response.headers.multi_items())


def _spy_fallback(app: FastAPI) -> list[str]:
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    calls: list[str] = []
    fallback = index.fallback

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            calls.append(scope["path"])
        await fallback(scope, receive, send)

    index.fallback = spy
    return calls


@pytest.mark.parametrize("redirect_slashes", [True, False])
@pytest.mark.parametrize(("method", "path"), REQUESTS)
def test_every_answer_is_fastapis(method: str, path: str, redirect_slashes: bool) -> None:
    indexed = build_app(index=True, redirect_slashes=redirect_slashes)
    plain = build_app(index=False, redirect_slashes=redirect_slashes)
    assert _answer(indexed, method, path) == _answer(plain, method, path)


@pytest.mark.parametrize(
    ("method", "path", "endpoint"),
    [
        ("GET", "/plain", "plain"),
        ("GET", "/items/special", "special"),  # before the {item_id} and {name} routes
        ("POST", "/items/special", "post_special"),  # the first router only has a GET
        ("GET", "/items/42", "item"),
        ("GET", "/items/abc", "named"),  # not an int: the second router's route
        ("GET", "/items/42/files/a/b", "item_file"),
        ("GET", "/parent/child/x", "leaf"),  # nested inclusion
        ("GET", "/parent/own", "own"),
        ("GET", "/n/50", "get_n"),
        ("GET", "/after-routers", "after_routers"),
    ],
)
def test_the_index_serves_what_it_can_decide(method: str, path: str, endpoint: str) -> None:
    app = build_app(index=True)
    fell_back = _spy_fallback(app)
    status, body, _ = _answer(app, method, path)
    assert status == 200
    assert httpx.Response(200, content=body).json()["endpoint"] == endpoint
    assert fell_back == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/static/shadowed"),  # a mount comes first: FastAPI decides
        ("GET", "/nowhere"),  # 404
        ("DELETE", "/items/special"),  # 405
        ("GET", "/plain/"),  # FastAPI's slash redirect
        ("GET", "/plain%0A"),
        ("GET", "/audited/one"),  # route classes that override handle or matches
        ("GET", "/versioned/thing"),
    ],
)
def test_fastapi_decides_what_the_index_cannot(method: str, path: str) -> None:
    app = build_app(index=True)
    fell_back = _spy_fallback(app)
    _answer(app, method, path)
    assert fell_back == [unquote(path)]


def test_the_route_scope_is_fastapis() -> None:
    """What the endpoint and FastAPI's own helpers read from the scope."""
    app = build_app(index=True)
    _, body, _ = _answer(app, "GET", "/items/7/files/x.txt")
    seen = httpx.Response(200, content=body).json()
    assert seen == {
        "endpoint": "item_file",
        "fastapi_scope": True,
        "audited": False,
        "path_params": {"item_id": 7, "path": "x.txt"},
        "route": "/items/{item_id:int}/files/{path:path}",  # as its router declared it
        "item_id": 7,
        "path": "x.txt",
    }


def test_dependency_overrides_and_exception_handlers_apply() -> None:
    app = build_app(index=True)
    app.dependency_overrides[_value] = lambda: "overridden"
    _, body, _ = _answer(app, "GET", "/plain")
    assert httpx.Response(200, content=body).json()["value"] == "overridden"
    status, body, _ = _answer(app, "GET", "/items/guarded")
    assert (status, httpx.Response(status, content=body).json()) == (
        403,
        {"detail": "forbidden by a dependency"},
    )


def test_routes_added_after_the_first_request_are_served() -> None:
    app = build_app(index=True)
    assert _answer(app, "GET", "/plain")[0] == 200  # the index is built
    late = APIRouter()

    @late.get("/late")
    async def late_route(request: Request) -> Any:
        return _seen(request, "late")

    app.include_router(late)
    assert httpx.Response(200, content=_answer(app, "GET", "/late")[1]).json()["endpoint"] == (
        "late"
    )
    # A route added to a router that is already included (after the first request) too,
    # and in the position FastAPI gives it.
    items = next(
        context.original_route
        for context in iter_route_contexts(app.routes)
        if getattr(context.original_route, "name", None) == "special"
    )
    assert isinstance(items, APIRoute)
    router = next(
        route.original_router  # type: ignore[attr-defined]
        for route in app.router.routes
        if getattr(route, "original_router", None) is not None
        and items in route.original_router.routes  # type: ignore[attr-defined]
    )

    @router.get("/added")
    async def added(request: Request) -> Any:
        return _seen(request, "added")

    fell_back = _spy_fallback(app)
    status, body, _ = _answer(app, "GET", "/items/added")
    assert (status, httpx.Response(status, content=body).json()["endpoint"]) == (200, "added")
    assert fell_back == []


def test_the_application_route_list_is_read_again_when_it_changes() -> None:
    """Reordered or replaced in place (same length): FastAPI reads the list on every request."""
    app = FastAPI()

    @app.get("/{name}")
    async def catch_all(request: Request, name: str) -> Any:
        return _seen(request, "catch_all")

    @app.get("/health")
    async def health(request: Request) -> Any:  # pragma: no cover - reached after the move
        return _seen(request, "health")

    install_route_index(app)
    assert httpx.Response(200, content=_answer(app, "GET", "/health")[1]).json()["endpoint"] == (
        "catch_all"
    )
    app.router.routes.reverse()
    assert httpx.Response(200, content=_answer(app, "GET", "/health")[1]).json()["endpoint"] == (
        "health"
    )


def test_not_installed_on_a_router_with_a_body_limit_of_its_own() -> None:
    """`FastAPI(max_body_size=...)` wraps the router: the index would skip the limit."""
    app = FastAPI(max_body_size=10)

    async def upload(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(await request.body())))

    app.add_route("/upload", upload, methods=["POST"])
    assert install_route_index(app) is False
    assert not isinstance(app.router.middleware_stack, RouteIndex)
    assert TestClient(app).post("/upload", content=b"x" * 100).status_code == 413


def _sample_path(path_format: str) -> str:
    values = {"int": "7", "path": "a/b", "uuid": "0b8e1ff6-bd43-4a1e-9ab8-3b43f8c5b1a8"}
    parts = []
    for part in path_format.split("/"):
        if part.startswith("{") and part.endswith("}"):
            _, _, kind = part[1:-1].partition(":")
            part = values.get(kind, "sample")
        parts.append(part)
    return "/".join(parts)


def _contexts() -> Iterator[Any]:
    from src.interfaces.main import app

    yield from iter_route_contexts(app.routes)


def test_the_product_routes_are_all_served_by_the_index() -> None:
    """Every API route of the product is found by the index, and it is the route FastAPI's
    ordered scan finds first for that path and method."""
    from src.interfaces.main import app

    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    index._build()
    assert index._tables.usable
    contexts = list(_contexts())
    checked = 0
    for context in contexts:
        if not isinstance(context.original_route, APIRoute):
            continue
        path = _sample_path(context.path_format)
        for method in sorted(context.methods):
            scope = {"type": "http", "path": path, "method": method, "path_params": {}}
            first = next(c for c in contexts if c.matches(scope)[0] == Match.FULL)
            found = index._find(index._tables, path, method)
            assert found is not None, (method, path)
            assert found[0].route is first.original_route, (method, path)
            checked += 1
    assert checked > 40
