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


def _echo_app(max_body_bytes: int = 100, **options):
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"size": len(await request.body())})

    inner = Starlette(routes=[Route("/echo", echo, methods=["POST", "GET"])])
    return EdgeMiddleware(inner, max_body_bytes=max_body_bytes, hsts=False, **options)


async def _raw(app, method: str, body_chunks: list[bytes], headers: list[tuple[bytes, bytes]]):
    """Drive the ASGI app directly: a body in chunks, with exactly the given headers."""
    scope = {
        "type": "http",
        "method": method,
        "path": "/echo",
        "raw_path": b"/echo",
        "query_string": b"",
        "headers": headers,
        "http_version": "2",
        "scheme": "http",
        "server": ("t", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
        for i, chunk in enumerate(body_chunks)
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], dict(start["headers"])


async def test_a_body_without_any_length_header_is_counted():
    """HTTP/2 servers deliver bodies with neither Content-Length nor Transfer-Encoding."""
    status, _ = await _raw(_echo_app(), "POST", [b"x" * 60] * 3, [])
    assert status == 413
    status, _ = await _raw(_echo_app(), "POST", [b"x" * 30] * 3, [])
    assert status == 200


async def test_a_declared_oversize_body_is_refused_without_queueing():
    gate, order = asyncio.Event(), []
    app = _app(gate, order, max_concurrent=1, queue_timeout=5)
    app.max_body_bytes = 10
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        holder = asyncio.create_task(client.get("/slow?n=0"))  # takes the only slot
        await asyncio.sleep(0.02)
        too_big = await asyncio.wait_for(client.post("/slow?n=1", content=b"x" * 50), 1)
        gate.set()
        await holder
    assert too_big.status_code == 413


async def test_requests_with_a_body_never_hold_a_slot():
    """A client trickling its body must not take a slot from everyone else."""
    gate = asyncio.Event()

    async def slow_body(request: Request) -> JSONResponse:
        await gate.wait()
        return JSONResponse({"size": len(await request.body())})

    async def read(_: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    inner = Starlette(routes=[Route("/upload", slow_body, methods=["POST"]), Route("/read", read)])
    app = EdgeMiddleware(
        inner, max_body_bytes=1000, hsts=False, max_concurrent=1, queue_timeout=0.2
    )
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        uploads = [asyncio.create_task(client.post("/upload", content=b"x" * 10)) for _ in range(3)]
        await asyncio.sleep(0.02)
        read = await client.get("/read")
        gate.set()
        assert {r.status_code for r in await asyncio.gather(*uploads)} == {200}
    assert read.status_code == 200


async def test_every_response_varies_on_accept_encoding():
    async with AsyncClient(transport=ASGITransport(app=_echo_app()), base_url="http://t") as c:
        plain = await c.get("/echo")
        gzipped = await c.get("/echo", headers={"Accept-Encoding": "gzip"})
    assert plain.headers["vary"] == "Accept-Encoding"
    assert "Accept-Encoding" in gzipped.headers["vary"]


async def test_the_first_of_repeated_headers_counts():
    status, headers = await _raw(
        _echo_app(),
        "GET",
        [b""],
        [
            (b"cookie", b"csrf_token=abc"),
            (b"cookie", b"other=1"),
            (b"x-request-id", b"first-id"),
            (b"x-request-id", b"second-id"),
        ],
    )
    assert status == 200
    assert headers[b"x-request-id"] == b"first-id"
    assert b"set-cookie" not in headers, "the client has a CSRF cookie: none is set"


async def test_the_edges_own_answers_pass_the_cors_wrapper():
    from starlette.middleware.cors import CORSMiddleware

    origin = "https://app.example.com"
    app = _echo_app(
        max_body_bytes=10,
        wrap_own_responses=lambda inner: CORSMiddleware(inner, allow_origins=[origin]),
    )
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/echo", content=b"x" * 50, headers={"Origin": origin})
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == origin
