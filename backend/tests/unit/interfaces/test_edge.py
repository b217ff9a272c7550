"""The edge middleware's backpressure: a bounded number of requests run at once, the rest wait
their turn in arrival order, and a request that waited too long is a fast 503 + Retry-After."""

from __future__ import annotations

import asyncio

import pytest
from httpx import ASGITransport, AsyncClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from src.interfaces.edge import EdgeMiddleware

pytestmark = pytest.mark.unit


def _app(gate: asyncio.Event, order: list[str], *, max_concurrent: int, queue_timeout: float):
    running = 0
    peak = 0

    async def slow(request: Request) -> JSONResponse:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        order.append(request.query_params["n"])
        try:
            await gate.wait()
        finally:
            running -= 1
        return JSONResponse({"n": request.query_params["n"], "peak": peak})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    inner = Starlette(routes=[Route("/slow", slow), Route("/health", health)])
    return EdgeMiddleware(
        inner,
        max_body_bytes=1024,
        hsts=False,
        max_concurrent=max_concurrent,
        queue_timeout=queue_timeout,
    )


async def test_requests_beyond_the_bound_wait_their_turn_in_arrival_order():
    gate, order = asyncio.Event(), []
    app = _app(gate, order, max_concurrent=2, queue_timeout=5)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        tasks = []
        for n in range(6):
            tasks.append(asyncio.create_task(client.get(f"/slow?n={n}")))
            await asyncio.sleep(0.01)  # a known arrival order
        await asyncio.sleep(0.05)
        assert order == ["0", "1"], "only two run at once; the others wait before any work"
        gate.set()
        responses = await asyncio.gather(*tasks)
    assert [r.status_code for r in responses] == [200] * 6
    assert order == [str(n) for n in range(6)], "waiting requests are admitted first come"
    assert max(r.json()["peak"] for r in responses) == 2


async def test_a_request_that_waited_too_long_is_a_fast_503_with_retry_after():
    gate, order = asyncio.Event(), []
    app = _app(gate, order, max_concurrent=1, queue_timeout=0.1)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        holder = asyncio.create_task(client.get("/slow?n=0"))
        await asyncio.sleep(0.02)
        shed = await client.get("/slow?n=1")
        # The liveness probe never queues, even while the app is saturated.
        health = await client.get("/health")
        gate.set()
        assert (await holder).status_code == 200
        after = await client.get("/slow?n=2")
    assert shed.status_code == 503
    assert shed.headers["Retry-After"] == "1"
    assert shed.headers["X-Request-ID"]
    assert "overloaded" in shed.json()["detail"]
    assert order == ["0", "2"], "the refused request never ran"
    assert health.status_code == 200
    assert after.status_code == 200, "the slot was given back"


async def test_unbounded_when_disabled():
    gate, order = asyncio.Event(), []
    app = _app(gate, order, max_concurrent=0, queue_timeout=0.01)
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        tasks = [asyncio.create_task(client.get(f"/slow?n={n}")) for n in range(5)]
        await asyncio.sleep(0.05)
        assert len(order) == 5
        gate.set()
        assert {r.status_code for r in await asyncio.gather(*tasks)} == {200}
