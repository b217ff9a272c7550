"""Swagger UI that works with cookie sessions and CSRF, and ReDoc, both served offline.

FastAPI's pages as they are, plus a request interceptor: the browser sends the session cookie
by itself, and the interceptor copies the `csrf_token` cookie into `X-CSRF-Token` on unsafe
requests, so "Try it out" works for every route after `POST /api/v1/auth/login`.

The Swagger UI and ReDoc bundles come from the `fastapi-offline` package and are served by the
app under `/docs/static`, so the pages need no CDN: they work without a network and under the
docs CSP (`'self'` only; the Swagger page's one inline script is allowed by its hash).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from src.infrastructure.config import settings
from src.infrastructure.security.headers import docs_csp

STATIC_URL = "/docs/static"
STATIC_DIR = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_JS = f"{STATIC_URL}/swagger-ui-bundle.js"
SWAGGER_CSS = f"{STATIC_URL}/swagger-ui.css"
REDOC_JS = f"{STATIC_URL}/redoc.standalone.js"
FAVICON = f"{STATIC_URL}/favicon.png"

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

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _script_hashes(html: str) -> list[str]:
    """CSP sources for the page's inline scripts, so none other can run."""
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def swagger_html(openapi_url: str, title: str) -> str:
    """The CSRF-aware Swagger UI page, with its assets from `STATIC_URL`."""
    page = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=SWAGGER_JS,
        swagger_css_url=SWAGGER_CSS,
        swagger_favicon_url=FAVICON,
        # No badge from the public validator: the page calls nothing but the app.
        swagger_ui_parameters={"validatorUrl": None},
    )
    return bytes(page.body).decode().replace("presets: [", _INTERCEPTOR, 1)


def add_docs(app: FastAPI) -> None:
    """Serve /docs (CSRF-aware Swagger UI), /redoc and their assets; call with docs_url=None."""
    openapi_url = app.openapi_url or "/openapi.json"
    swagger_page = swagger_html(openapi_url, f"{app.title} - docs")
    swagger_csp = docs_csp(_script_hashes(swagger_page))
    redoc_page = bytes(
        get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=REDOC_JS,
            redoc_favicon_url=FAVICON,
            with_google_fonts=False,
        ).body
    ).decode()

    async def swagger(_: Request) -> HTMLResponse:
        return HTMLResponse(swagger_page, headers={"Content-Security-Policy": swagger_csp})

    async def redoc(_: Request) -> HTMLResponse:
        return HTMLResponse(redoc_page)

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="docs-static")
