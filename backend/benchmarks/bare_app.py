"""The yardstick: a bare Starlette + asyncpg app answering the same authenticated read.

It resolves the session cookie with the same joined query as the product (session hash ->
user row) and returns the same JSON, with nothing else: no validation, no middleware, no ORM.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

DSN = os.environ["BARE_DSN"]
SECRET = os.environ["SECRET_KEY"].encode()
QUERY = """
SELECT u.id, u.name, u.username, u.email, u.is_superuser, u.tier_id, u.created_at
FROM user_sessions s JOIN users u ON u.id = s.user_id
WHERE s.token_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $3 AND NOT u.is_deleted
"""
pool: asyncpg.Pool | None = None


@asynccontextmanager
async def lifespan(_: Starlette) -> AsyncIterator[None]:
    global pool
    pool = await asyncpg.create_pool(DSN, min_size=5, max_size=10)
    yield
    await pool.close()


async def me(request: Request) -> Response:
    token = request.cookies.get("session", "")
    digest = hmac.new(SECRET, f"session:{token}".encode(), hashlib.sha256).hexdigest()
    now = datetime.now(UTC)
    assert pool is not None
    row = await pool.fetchrow(QUERY, digest, now, now - timedelta(hours=2))
    if row is None:
        return Response('{"detail":"Not authenticated"}', 401, media_type="application/json")
    body = dict(row) | {"created_at": row["created_at"].isoformat()}
    return Response(json.dumps(body), media_type="application/json")


app = Starlette(routes=[Route("/me", me)], lifespan=lifespan)
