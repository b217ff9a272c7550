"""Every error is `{"detail": ...}` JSON with the right status and a request id; no leaks."""

import logging

import pytest
from fastapi import APIRouter
from httpx import ASGITransport, AsyncClient

from src.infrastructure.config import settings
from tests.helpers.factories import build_user_create_payload


@pytest.mark.integration
async def test_validation_errors_name_the_field_and_never_echo_the_input(client):
    payload = build_user_create_payload(email="not-an-email", password="SuperSecret")
    response = await client.post("/api/v1/users/", json=payload)
    assert response.status_code == 422
    body = response.json()
    fields = {tuple(error["loc"]) for error in body["detail"]}
    assert ("body", "email") in fields
    assert ("body", "password") in fields  # two common words: too easy to guess
    assert "SuperSecret" not in response.text
    assert "not-an-email" not in response.text


@pytest.mark.integration
async def test_malformed_json_is_a_422(client):
    response = await client.post(
        "/api/v1/users/", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.integration
async def test_unknown_route_and_method_are_json(client):
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
    wrong_method = await client.put("/api/v1/users/me")
    assert wrong_method.status_code == 405
    assert "detail" in wrong_method.json()


@pytest.mark.integration
async def test_request_body_over_the_limit_is_a_413(client, monkeypatch):
    too_big = b"x" * (settings.MAX_REQUEST_BODY_BYTES + 1)
    response = await client.post(
        "/api/v1/users/", content=too_big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


@pytest.mark.integration
async def test_streamed_body_over_the_limit_is_a_413(client):
    async def chunks():
        for _ in range(settings.MAX_REQUEST_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    response = await client.post(
        "/api/v1/users/", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


@pytest.mark.integration
async def test_request_id_is_echoed_or_generated(client):
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/health", headers={"X-Request-ID": "bad id\twith junk"})
    assert generated.headers["X-Request-ID"] not in ("", "bad id\twith junk")
    error = await client.get("/api/v1/users/nobody-at-all")
    assert error.status_code == 404
    assert error.headers["X-Request-ID"]


@pytest.mark.integration
async def test_security_headers_are_set(client):
    response = await client.get("/health")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in response.headers  # plain http in pytest


@pytest.mark.integration
async def test_an_unexpected_error_is_a_bare_500_with_a_request_id_logged_once(app, caplog):
    router = APIRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT password FROM users -- secret detail")

    from src.interfaces.main import create_app

    broken = create_app()
    broken.include_router(router)
    # raise_app_exceptions=True: an exception escaping the app is what a server logs again.
    transport = ASGITransport(app=broken, raise_app_exceptions=True)
    with caplog.at_level(logging.INFO):
        async with AsyncClient(transport=transport, base_url="http://test") as ac:
            response = await ac.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert response.headers["X-Request-ID"]
    traces = [r for r in caplog.records if r.exc_info]
    assert len(traces) == 1
    assert traces[0].name == "src.errors"


@pytest.mark.integration
async def test_readiness_checks_the_database(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == "ok"
    assert set(body["checks"].values()) == {"ok"}


@pytest.mark.integration
async def test_readiness_is_503_when_the_database_is_down(app, monkeypatch):
    from sqlalchemy.ext.asyncio import AsyncSession

    from src.infrastructure.database.session import async_session, build_engine

    dead = build_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_pre_ping=False)

    async def unreachable_db():
        async with AsyncSession(dead) as session:
            yield session

    app.dependency_overrides[async_session] = unreachable_db
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://t") as ac:
            response = await ac.get("/health/ready/")
    finally:
        app.dependency_overrides.clear()
        await dead.dispose()
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable"


@pytest.mark.integration
async def test_docs_page_echoes_the_csrf_cookie_for_try_it_out(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "requestInterceptor" in page.text
    assert settings.CSRF_HEADER_NAME in page.text
    assert (await client.get("/redoc")).status_code == 200
    assert (await client.get("/openapi.json")).json()["paths"]["/api/v1/auth/login"]


@pytest.mark.integration
async def test_docs_pages_load_only_assets_the_app_serves(client):
    import re

    expected = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".png": "image/png",
    }
    for path in ("/docs", "/redoc"):
        page = await client.get(path)
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "http" not in csp  # no other origin
        directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
        assert "'unsafe-inline'" not in directives["script-src"]
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert urls, page.text
        for url in urls:
            assert url.startswith("/docs/static/"), url  # same origin, nothing from a CDN
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = url[url.rindex(".") :]
            assert asset.headers["content-type"].startswith(expected[suffix]), url
            assert len(asset.content) > 1000, url


@pytest.mark.integration
async def test_docs_are_off_in_production(monkeypatch):
    from src.infrastructure.config import Environment
    from src.interfaces.main import create_app

    strong = "kP3v9sQ2xZ8mN4bT7wY1cR6hJ0fL5gD2aE9uI3oS"
    monkeypatch.setattr(settings, "ENVIRONMENT", Environment.PRODUCTION)
    monkeypatch.setattr(settings, "SECRET_KEY", strong)
    monkeypatch.setattr(settings, "DATABASE_URL", "postgresql+asyncpg://app:Str0ng-pw@db/app")
    monkeypatch.setattr(settings, "RATE_LIMIT_STORAGE", "redis")
    monkeypatch.setattr(settings, "REDIS_URL", "redis://:pw@redis:6379/0")
    monkeypatch.setattr(settings, "EMAIL_BACKEND", "smtp")
    monkeypatch.setattr(settings, "FRONTEND_URL", "https://app.example.com")
    monkeypatch.setattr(settings, "SINGLE_PROCESS", True)  # the suite's in-process stores
    production = create_app()
    async with AsyncClient(transport=ASGITransport(app=production), base_url="http://t") as ac:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/static/swagger-ui.css"):
            assert (await ac.get(path)).status_code == 404
        assert (await ac.get("/health")).status_code == 200


@pytest.mark.integration
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/users", {"name": "x\u0000y"}),
        ("POST", "/api/v1/auth/login", {"username": "a\u0000b", "password": "whatever"}),
        ("GET", "/api/v1/users/a%00b", None),
    ],
)
async def test_a_nul_character_is_bad_input_never_a_500(client, method, path, body):
    payload = build_user_create_payload(**body) if path == "/api/v1/users" else body
    response = await client.request(method, path, json=payload)
    assert response.status_code != 500
    assert response.status_code in {201, 401, 404, 422}
    assert "detail" in response.json() or response.status_code == 201
