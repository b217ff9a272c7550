"""`/health` (the process is up) and `/health/ready` (its dependencies answer)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import JSONResponse

from src.infrastructure.database.session import DBSession

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/health", response_model=Health)
async def health() -> dict[str, str]:
    """Liveness: answers while the process can serve requests."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(db: DBSession) -> JSONResponse | dict[str, object]:
    """Readiness: 503 naming the failed check when a required dependency does not answer."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(db.execute(text("SELECT 1")), CHECK_TIMEOUT_SECONDS)
        checks["database"] = "ok"
    except Exception:  # any failure means not ready; the detail stays in the server logs
        checks["database"] = "unavailable"
    if all(value == "ok" for value in checks.values()):
        return {"status": "ok", "checks": checks}
    return JSONResponse({"status": "unavailable", "checks": checks}, status_code=503)
