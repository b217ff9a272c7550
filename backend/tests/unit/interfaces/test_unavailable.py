"""Which errors are an outage (503 + Retry-After, one warning) and which are bugs (500 with the
trace in the log): a dependency that is down or saturated is the first, a broken query or an
unrelated timeout is the second."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from src.interfaces.errors import register_error_handlers

pytestmark = pytest.mark.unit


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _with_cause(error: Exception, cause: BaseException) -> Exception:
    error.__cause__ = cause
    return error


OUTAGES = {
    "pool exhausted": PoolTimeoutError("QueuePool limit of size 10 overflow 0 reached"),
    "connection lost": OperationalError(
        "SELECT 1", {}, _DriverError("terminating connection", "57P01")
    ),
    "connection exception": OperationalError("SELECT 1", {}, _DriverError("gone", "08006")),
    "refused by the OS": OperationalError(
        "SELECT 1", {}, _with_cause(_DriverError("connect failed"), ConnectionRefusedError())
    ),
    "redis down": RedisConnectionError("Error 111 connecting to 127.0.0.1:6379."),
    "refused": ConnectionRefusedError(111, "Connection refused"),
}
BUGS = {
    "missing table": OperationalError("SELECT 1", {}, _DriverError("no such table: users")),
    "bad query": ProgrammingError("SELEC 1", {}, _DriverError("syntax error", "42601")),
    "unrelated timeout": TimeoutError("a call of our own timed out"),
}


def _app(error: BaseException) -> FastAPI:
    app = FastAPI()
    register_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


async def _get(error: BaseException):
    transport = ASGITransport(app=_app(error), raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/boom")


@pytest.mark.parametrize("name", sorted(OUTAGES))
async def test_an_outage_is_a_503_with_retry_after(name, caplog):
    response = await _get(OUTAGES[name])
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json() == {"detail": "Service temporarily unavailable, try again shortly"}
    warnings = [r for r in caplog.records if r.name == "src.errors"]
    assert len(warnings) == 1
    assert warnings[0].levelname == "WARNING"
    assert warnings[0].exc_info is None, "an outage is one line, not a stack trace"


@pytest.mark.parametrize("name", sorted(BUGS))
async def test_a_bug_stays_a_500_with_its_trace_logged(name, caplog):
    response = await _get(BUGS[name])
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert response.json() == {"detail": "Internal server error"}
    errors = [r for r in caplog.records if r.name == "src.errors" and r.levelname == "ERROR"]
    assert errors
    assert errors[0].exc_info is not None
