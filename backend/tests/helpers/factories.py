"""Data-creation helpers (faker-based) for tests."""

from __future__ import annotations

from typing import Any

from faker import Faker
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from src.modules.user.service import UserService

fake = Faker()
DEFAULT_PASSWORD = "Quill-Harbor-Velvet-42"  # passes the password policy


def build_user_create_payload(**overrides: Any) -> dict[str, Any]:
    # The suffix keeps usernames and emails unique across a test without relying on luck.
    unique = fake.unique.pystr(min_chars=6, max_chars=6).lower()
    return {
        "name": fake.name()[:50],
        "username": f"{fake.user_name()[:20]}{unique}".replace("-", "_"),
        "email": f"{unique}.{fake.email()}",
        "password": DEFAULT_PASSWORD,
        **overrides,
    }


async def create_user(
    db: AsyncSession, *, is_superuser: bool = False, **overrides: Any
) -> dict[str, Any]:
    """Insert a user through the service and return it with its clear-text password."""
    payload = build_user_create_payload(**overrides)
    user = await UserService().create(payload=payload, db=db, is_superuser=is_superuser)
    return {**user, "password": payload["password"]}


async def login(client: AsyncClient, username: str, password: str = DEFAULT_PASSWORD) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text


def make_principal(**fields: Any) -> Any:
    """A `Principal` for unit tests, with plausible defaults for the fields not given."""
    from datetime import UTC, datetime

    from src.modules.auth.sessions import Principal

    defaults: dict[str, Any] = {
        "id": 1,
        "username": "alice",
        "email": "alice@example.com",
        "name": "Alice",
        "is_superuser": False,
        "tier_id": None,
        "is_verified": False,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    return Principal(**(defaults | fields))
