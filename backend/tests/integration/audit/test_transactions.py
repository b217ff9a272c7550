"""Real commits (`committed_client`: the app's own engine, tables emptied afterwards): a failed
sign-in's row is committed although the request answers 401, and a change whose commit fails
leaves neither the change nor its row."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.database.session import get_sessionmaker
from src.modules.audit.models import AuditEvent
from tests.helpers.factories import DEFAULT_PASSWORD, create_user
from tests.integration.audit.helpers import assert_request, events, request_headers

pytestmark = pytest.mark.integration

AUTH = "/api/v1/auth"
NEW_PASSWORD = "Brand-new-passphrase-9"


async def committed_user() -> dict:
    async with get_sessionmaker()() as db:
        return await create_user(db)


async def test_a_failed_login_is_committed(committed_client):
    user = await committed_user()
    headers = request_headers()
    response = await committed_client.post(
        f"{AUTH}/login",
        json={"username": user["username"], "password": "Wrong-password-123"},
        headers=headers,
    )
    assert response.status_code == 401

    async with get_sessionmaker()() as db:  # another connection: only committed rows
        [failed] = await events(db, "auth.login.failed")
    assert (failed.reason, failed.target_user_id) == ("bad_password", user["id"])
    assert_request(failed, headers, actor_id=None)


async def test_a_change_whose_commit_fails_leaves_no_row(committed_client, monkeypatch):
    user = await committed_user()
    login = await committed_client.post(
        f"{AUTH}/login", json={"username": user["username"], "password": DEFAULT_PASSWORD}
    )
    assert login.status_code == 200
    commit = AsyncSession.commit

    async def failing_commit(self: AsyncSession) -> None:
        if any(isinstance(row, AuditEvent) and row.kind == "password.changed" for row in self.new):
            raise OperationalError("COMMIT", {}, Exception("the database went away"))
        await commit(self)

    monkeypatch.setattr(AsyncSession, "commit", failing_commit)
    response = await committed_client.post(
        f"{AUTH}/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    monkeypatch.undo()

    assert response.status_code >= 500
    async with get_sessionmaker()() as db:
        assert await events(db, "password.changed") == []
    # The change went with it: the old password still signs in, the new one does not.
    for password, status in ((NEW_PASSWORD, 401), (DEFAULT_PASSWORD, 200)):
        again = await committed_client.post(
            f"{AUTH}/login", json={"username": user["username"], "password": password}
        )
        assert again.status_code == status
