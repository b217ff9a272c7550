"""The FastAPI application: `src.interfaces.main.app`.

Middleware order (outermost first): request id, security headers, CSRF cookie, CORS, body
size limit, trailing slash. All pure ASGI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

import src.modules.models  # noqa: F401 - registers every model on Base.metadata
from src.infrastructure.auth.csrf import CSRFCookieMiddleware
from src.infrastructure.config import Environment, settings
from src.infrastructure.database.session import dispose_engine
from src.infrastructure.logging.request_id import RequestIdMiddleware
from src.infrastructure.security.body_limit import BodySizeLimitMiddleware
from src.infrastructure.security.headers import SecurityHeadersMiddleware
from src.infrastructure.security.validator import validate_settings
from src.interfaces.api.v1 import router as api_v1_router
from src.interfaces.docs import add_docs
from src.interfaces.errors import register_error_handlers
from src.interfaces.health import router as health_router
from src.interfaces.trailing_slash import TrailingSlashMiddleware


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    yield
    await dispose_engine()


def create_app() -> FastAPI:
    validate_settings(settings)
    docs = settings.docs_enabled
    app = FastAPI(
        title=settings.APP_NAME,
        version=settings.APP_VERSION,
        lifespan=lifespan,
        redirect_slashes=False,  # TrailingSlashMiddleware serves both forms, no 307
        docs_url=None,  # served by add_docs, CSRF-aware
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    register_error_handlers(app)
    if docs:
        add_docs(app)
    app.include_router(health_router)
    app.include_router(api_v1_router)

    # add_middleware wraps: the last one added is the outermost. Everything a client can
    # receive (a 413 and CORS preflights included) passes the cookie and header layers.
    app.add_middleware(TrailingSlashMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.MAX_REQUEST_BODY_BYTES)
    if settings.CORS_ORIGINS:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.CORS_ORIGINS,
            allow_credentials=settings.CORS_ALLOW_CREDENTIALS,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Content-Type", settings.CSRF_HEADER_NAME, "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(CSRFCookieMiddleware)
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts=settings.ENVIRONMENT not in (Environment.LOCAL, Environment.PYTEST),
    )
    app.add_middleware(RequestIdMiddleware)
    return app


app = create_app()
