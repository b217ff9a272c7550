"""Swagger UI that works with cookie sessions and CSRF.

FastAPI's page as is, plus a request interceptor: the browser sends the session cookie by
itself, and the interceptor copies the `csrf_token` cookie into `X-CSRF-Token` on unsafe
requests, so "Try it out" works for every route after `POST /api/v1/auth/login`.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse

from src.infrastructure.config import settings

_INTERCEPTOR = f"""
    requestInterceptor: (request) => {{
        const method = (request.method || "GET").toUpperCase();
        if (!["GET", "HEAD", "OPTIONS"].includes(method)) {{
            const match = document.cookie.match(/(?:^|;\\s*){settings.CSRF_COOKIE_NAME}=([^;]+)/);
            if (match) request.headers["{settings.CSRF_HEADER_NAME}"] = match[1];
        }}
        request.credentials = "same-origin";
        return request;
    }},
    presets: ["""


def add_docs(app: FastAPI) -> None:
    """Serve /docs (CSRF-aware Swagger UI) and /redoc; call with docs_url=None on the app."""
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger(_: Request) -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - docs")
        html = bytes(page.body).decode().replace("presets: [", _INTERCEPTOR, 1)
        return HTMLResponse(html)

    async def redoc(_: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=openapi_url, title=f"{app.title} - ReDoc")

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
