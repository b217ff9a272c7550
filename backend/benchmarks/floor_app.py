"""The floor: a bare Starlette + asyncpg + orjson app doing the same database work as the product.

- `/plain`: a constant JSON body (the yardstick for the product's `/health`).
- `/users/{username}`: one SELECT of the public profile fields.
- `/me`: the session cookie's keyed hash joined to its user (the product's session query).
- `fastapi_app`: FastAPI with one `/plain` route and nothing else, to show what the framework
  alone costs against the same Starlette route.

No validation, no middleware, no ORM, no rate limit, no logs: what the hardware, the server and
the database can do at best. The benchmark reports the product as a fraction of it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DSN = os.environ["FLOOR_DSN"]
SECRET = os.environ["SECRET_KEY"].encode()
ME = """
SELECT u.id, u.name, u.username, u.email, u.is_superuser, u.tier_id, u.created_at
FROM user_sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND NOT u.is_deleted
"""
PROFILE = "SELECT username, name, created_at FROM users WHERE username = $1 AND NOT is_deleted"
NOT_FOUND = Response(b'{"detail":"Not found"}', 404, media_type="application/json")
pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(DSN, min_size=5, max_size=10)
    yield
    await pool.close()


def _json(row: asyncpg.Record) -> Response:
    return Response(orjson.dumps(dict(row)), media_type="application/json")


async def plain(_: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def profile(request: Request) -> Response:
    assert pool is not None
    row = await pool.fetchrow(PROFILE, request.path_params["username"].lower())
    return NOT_FOUND if row is None else _json(row)


async def me(request: Request) -> Response:
    token = request.cookies.get("session", "")
    digest = hmac.new(SECRET, f"session:{token}".encode(), hashlib.sha256).hexdigest()
    now = datetime.now(UTC)
    assert pool is not None
    row = await pool.fetchrow(ME, digest, now, now - timedelta(hours=2))
    return NOT_FOUND if row is None else _json(row)


app = Starlette(
    routes=[Route("/plain", plain), Route("/users/{username}", profile), Route("/me", me)],
    lifespan=lifespan,
)


# The framework's own cost, for reference: FastAPI with one route, no middleware, no database.
fastapi_app = FastAPI()


class Health(BaseModel):
    status: str


@fastapi_app.get("/plain", response_model=Health)
async def fastapi_plain() -> dict[str, str]:
    return {"status": "ok"}
