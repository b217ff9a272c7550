"""`/health` (the process is up) and `/health/ready` (its dependencies answer).

Readiness checks the database and each configured Redis or broker with a short timeout. A
required dependency down means 503 naming it; the cache's Redis is optional (the cache fails
open), so it is reported but does not make the instance unready.

It cannot be used to amplify load: the probes reuse the app's clients (a pooled database
connection, the shared Redis clients; no new connection per call but RabbitMQ's TCP probe),
and a result is kept for `READY_CACHE_SECONDS`, with concurrent callers waiting for the one
check in flight instead of starting their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from urllib.parse import urlsplit

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import JSONResponse, Response

from src.infrastructure.cache.backends import redis_address
from src.infrastructure.config import settings
from src.infrastructure.database.session import DBSession
from src.infrastructure.redis_client import get_redis

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0
READY_CACHE_SECONDS = 1.0
OK, DOWN, DEGRADED = "ok", "unavailable", "unavailable (optional)"


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


_ALIVE = b'{"status":"ok"}'


@router.get("/health", response_model=Health)
async def health() -> Response:
    """Liveness: answers while the process can serve requests."""
    # Stored bytes (the `Health` document above): nothing to validate or serialize per call.
    return Response(_ALIVE, media_type="application/json")


async def _ping_redis(url: str, password: str | None = None) -> None:
    await get_redis(url, password=password).ping()


async def _connect_tcp(url: str) -> None:
    parts = urlsplit(url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port or 5672)
    writer.close()
    await writer.wait_closed()


def _checks(db: DBSession) -> dict[str, tuple[Callable[[], Awaitable[object]], bool]]:
    """name -> (probe, required)."""
    checks: dict[str, tuple[Callable[[], Awaitable[object]], bool]] = {
        "database": (lambda: db.execute(text("SELECT 1")), True)
    }
    uses_redis = "redis" in (
        settings.SESSION_BACKEND,
        settings.RATE_LIMIT_STORAGE,
        settings.TASKIQ_BROKER,
    )
    if uses_redis:
        url = settings.REDIS_URL or ""  # empty: the validator already refused to start
        checks["redis"] = (lambda: _ping_redis(url), True)
    if settings.TASKIQ_BROKER == "rabbitmq":
        checks["rabbitmq"] = (lambda: _connect_tcp(settings.RABBITMQ_URL), True)
    if settings.CACHE_ENABLED and settings.CACHE_BACKEND == "redis":
        cache_url, password = redis_address(settings)
        checks["cache"] = (lambda: _ping_redis(cache_url, password), False)
    return checks


async def _run(probe: Callable[[], Awaitable[object]]) -> bool:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except Exception:  # any failure means "not answering"; details stay in the server logs
        return False
    return True


class _Cached:
    """The last readiness result, for `READY_CACHE_SECONDS`, per configuration."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.key: Hashable = None
        self.expires = 0.0
        self.result: tuple[dict[str, str], bool] = ({}, False)


_last = _Cached()


def _configuration(db: DBSession) -> Hashable:
    """What the checks depend on: a result is reused only for the same targets."""
    return (
        id(db.bind),
        settings.SESSION_BACKEND,
        settings.RATE_LIMIT_STORAGE,
        settings.TASKIQ_BROKER,
        settings.REDIS_URL,
        settings.RABBITMQ_URL,
        settings.CACHE_ENABLED,
        settings.CACHE_BACKEND,
        settings.cache_redis,
    )


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(db: DBSession) -> JSONResponse | dict[str, object]:
    """Readiness: 503 naming the failed check when a required dependency does not answer.
    Checked at most once per `READY_CACHE_SECONDS` per process."""
    key = _configuration(db)
    async with _last.lock:  # concurrent callers share one check
        if _last.key != key or time.monotonic() >= _last.expires:
            _last.result = await _check_all(db)
            _last.key, _last.expires = key, time.monotonic() + READY_CACHE_SECONDS
        report, healthy = _last.result
    if healthy:
        return {"status": "ok", "checks": report}
    return JSONResponse({"status": "unavailable", "checks": report}, status_code=503)


async def _check_all(db: DBSession) -> tuple[dict[str, str], bool]:
    checks = _checks(db)
    names = list(checks)
    results = await asyncio.gather(*(_run(checks[name][0]) for name in names))
    report: dict[str, str] = {}
    ready = True
    for name, healthy in zip(names, results, strict=True):
        required = checks[name][1]
        report[name] = OK if healthy else (DOWN if required else DEGRADED)
        ready = ready and (healthy or not required)
    return report, ready
