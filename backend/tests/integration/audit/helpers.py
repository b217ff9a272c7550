"""Reading the audit log in tests: the rows a request wrote, and the request facts to expect."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from src.modules.audit.models import AuditEvent
from src.modules.audit.schemas import AuditEventRead

USER_AGENT = "audit-test-agent/1.0"
CLIENT_IP = "127.0.0.1"  # httpx's ASGITransport peer
_ids = itertools.count(1)


def request_headers(**extra: str) -> dict[str, str]:
    """A User-Agent and a fresh X-Request-ID, so each row can be tied to its request."""
    return {"User-Agent": USER_AGENT, "X-Request-ID": f"audit-req-{next(_ids)}", **extra}


async def events(db: AsyncSession, kind: str | None = None) -> list[AuditEvent]:
    statement = select(AuditEvent).order_by(AuditEvent.id)
    if kind is not None:
        statement = statement.where(AuditEvent.kind == kind)
    return list((await db.scalars(statement)).all())


async def the_event(db: AsyncSession, kind: str) -> AuditEvent:
    found = await events(db, kind)
    assert len(found) == 1, [(e.kind, e.reason) for e in await events(db)]
    return found[0]


def assert_request(event: AuditEvent, headers: dict[str, str], *, actor_id: int | None) -> None:
    """The row carries the request's facts: who, from where, which request."""
    assert event.actor_id == actor_id
    assert event.ip == CLIENT_IP
    assert event.user_agent == USER_AGENT
    assert event.request_id == headers["X-Request-ID"]


def serialized(rows: list[AuditEvent]) -> str:
    """Every row as the API would show it, in one string."""
    return "\n".join(
        AuditEventRead.model_validate(row, from_attributes=True).model_dump_json() for row in rows
    )


def assert_no_secret(rows: list[AuditEvent], *secrets: Any) -> None:
    text = serialized(rows)
    for secret in secrets:
        assert secret, "an empty secret proves nothing"
        assert str(secret) not in text
    # And nothing shaped like one of the app's secrets: argon2 hashes, API keys.
    assert "$argon2" not in text
    assert "fk_" not in text
