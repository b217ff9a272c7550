"""The full template of the matched route, through nested routers (FastAPI no longer
flattens them, so `scope["route"].path` alone is only the innermost part)."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from httpx import ASGITransport, AsyncClient

from src.infrastructure.ratelimit import all_route_templates, route_template


def _app() -> FastAPI:
    items = APIRouter(prefix="/items")

    @items.get("/{item_id}")
    async def read_item(item_id: int, request: Request) -> dict[str, str]:
        return {"template": route_template(request)}

    @items.get("")
    async def list_items(request: Request) -> dict[str, str]:
        return {"template": route_template(request)}

    v1 = APIRouter(prefix="/api/v1")
    v1.include_router(items)
    v2 = APIRouter(prefix="/api/v2")
    v2.include_router(items)  # the same routes under a second prefix
    app = FastAPI()
    app.include_router(v1)
    app.include_router(v2)
    return app


@pytest.mark.unit
@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/v1/items/7", "/api/v1/items/{item_id}"),
        ("/api/v1/items", "/api/v1/items"),
        ("/api/v2/items/7", "/api/v2/items/{item_id}"),
    ],
)
async def test_route_template_has_every_router_prefix(path, template):
    async with AsyncClient(transport=ASGITransport(app=_app()), base_url="http://t") as client:
        assert (await client.get(path)).json() == {"template": template}


@pytest.mark.unit
def test_all_route_templates():
    assert {"/api/v1/items/{item_id}", "/api/v2/items"} <= all_route_templates(_app())
