"""Single-use link tokens on the real database: bound to purpose, expiry and account state."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from src.infrastructure.auth.passwords import hash_password
from src.infrastructure.database.models import utcnow
from src.modules.auth import tokens
from src.modules.auth.models import AccountToken
from src.modules.auth.tokens import Purpose
from src.modules.user.crud import crud_users
from tests.helpers.factories import create_user

pytestmark = pytest.mark.integration


async def _row(db, user_id: int) -> dict:
    row = await crud_users.get(db, id=user_id)
    assert row is not None
    return row


async def _issue(db, user_id: int, purpose: Purpose = Purpose.RESET_PASSWORD, **kw) -> str:
    token = await tokens.issue(
        db, user=await _row(db, user_id), purpose=purpose, ttl_seconds=kw.pop("ttl", 600), **kw
    )
    await db.commit()
    return token


async def test_a_token_works_once(db_session):
    user = await create_user(db_session)
    token = await _issue(db_session, user["id"], new_email="new@example.com")

    first = await tokens.consume(db_session, token=token, purpose=Purpose.RESET_PASSWORD)
    second = await tokens.consume(db_session, token=token, purpose=Purpose.RESET_PASSWORD)

    assert first is not None
    assert first.user["id"] == user["id"]
    assert first.new_email == "new@example.com"
    assert second is None


async def test_a_token_is_bound_to_its_purpose(db_session):
    user = await create_user(db_session)
    token = await _issue(db_session, user["id"], Purpose.VERIFY_EMAIL)

    assert await tokens.consume(db_session, token=token, purpose=Purpose.RESET_PASSWORD) is None
    # The wrong-purpose attempt did not use it up.
    assert await tokens.consume(db_session, token=token, purpose=Purpose.VERIFY_EMAIL)


async def test_an_expired_or_unknown_token_is_refused(db_session):
    user = await create_user(db_session)
    token = await _issue(db_session, user["id"])
    past = utcnow() - timedelta(seconds=1)
    await db_session.execute(update(AccountToken).values(expires_at=past))

    assert await tokens.consume(db_session, token=token, purpose=Purpose.RESET_PASSWORD) is None
    assert await tokens.consume(db_session, token="nope", purpose=Purpose.RESET_PASSWORD) is None


async def test_a_token_dies_when_the_account_state_changes(db_session):
    user = await create_user(db_session)
    token = await _issue(db_session, user["id"])
    new_hash = await hash_password("Another-passphrase-42")
    await crud_users.update(db_session, {"hashed_password": new_hash}, id=user["id"])

    assert await tokens.consume(db_session, token=token, purpose=Purpose.RESET_PASSWORD) is None


async def test_issuing_voids_the_earlier_unused_tokens_of_that_purpose(db_session):
    user = await create_user(db_session)
    old = await _issue(db_session, user["id"])
    other_purpose = await _issue(db_session, user["id"], Purpose.VERIFY_EMAIL)
    new = await _issue(db_session, user["id"])

    assert await tokens.consume(db_session, token=old, purpose=Purpose.RESET_PASSWORD) is None
    assert await tokens.consume(db_session, token=new, purpose=Purpose.RESET_PASSWORD)
    assert await tokens.consume(db_session, token=other_purpose, purpose=Purpose.VERIFY_EMAIL)


async def test_only_a_keyed_hash_is_stored(db_session):
    user = await create_user(db_session)
    token = await _issue(db_session, user["id"])

    stored = (await db_session.execute(select(AccountToken.token_hash))).scalars().all()

    assert stored
    assert token not in stored
    assert all(token not in value for value in stored)


async def test_prune_drops_used_and_expired_tokens(db_session):
    user = await create_user(db_session)
    used = await _issue(db_session, user["id"], Purpose.VERIFY_EMAIL)
    await tokens.consume(db_session, token=used, purpose=Purpose.VERIFY_EMAIL)
    await _issue(db_session, user["id"], Purpose.RESET_PASSWORD)

    assert await tokens.prune(db_session) == 1
    count = await db_session.scalar(select(func.count()).select_from(AccountToken))
    assert count == 1


async def test_the_hourly_task_prunes_through_its_own_session(db_engine, clean_tables):
    """The scheduled task runs on the app's engine and commits (tables emptied afterwards)."""
    from src.infrastructure.database.session import get_sessionmaker
    from src.modules.auth.tasks import prune_link_tokens

    async with get_sessionmaker()() as db:
        user = await create_user(db)
        row = await crud_users.get(db, id=user["id"])
        await tokens.issue(db, user=row, purpose=Purpose.VERIFY_EMAIL, ttl_seconds=-1)
        await db.commit()

    result = await (await prune_link_tokens.kiq()).wait_result(timeout=10)

    assert result.return_value == 1
    assert prune_link_tokens.labels["schedule"] == [{"cron": "17 * * * *"}]


async def test_peek_reads_a_token_without_using_it(db_session):
    user = await create_user(db_session)
    token = await _issue(db_session, user["id"], Purpose.MFA_LOGIN)

    peeked = [await tokens.peek(db_session, token=token, purpose=Purpose.MFA_LOGIN) for _ in "ab"]
    consumed = await tokens.consume(db_session, token=token, purpose=Purpose.MFA_LOGIN)

    assert all(p is not None and p.user["id"] == user["id"] for p in peeked)
    assert consumed is not None
    assert await tokens.peek(db_session, token=token, purpose=Purpose.MFA_LOGIN) is None


async def test_peek_refuses_what_consume_refuses(db_session):
    user = await create_user(db_session)
    token = await _issue(db_session, user["id"], Purpose.MFA_LOGIN)

    assert await tokens.peek(db_session, token=token, purpose=Purpose.VERIFY_EMAIL) is None
    assert await tokens.peek(db_session, token="nope", purpose=Purpose.MFA_LOGIN) is None
    new_hash = await hash_password("Another-passphrase-42")
    await crud_users.update(db_session, {"hashed_password": new_hash}, id=user["id"])
    assert await tokens.peek(db_session, token=token, purpose=Purpose.MFA_LOGIN) is None

    other = await create_user(db_session)
    expired = await _issue(db_session, other["id"], Purpose.MFA_LOGIN)
    await db_session.execute(
        update(AccountToken)
        .where(AccountToken.user_id == other["id"])
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    assert await tokens.peek(db_session, token=expired, purpose=Purpose.MFA_LOGIN) is None


async def test_two_concurrent_uses_of_one_token_one_wins(db_engine, clean_tables):
    """Each use in its own transaction on the app's engine, at the same time."""
    import asyncio

    from src.infrastructure.database.session import get_sessionmaker

    async with get_sessionmaker()() as db:
        user = await create_user(db)
        token = await _issue(db, user["id"])

    async def use() -> bool:
        async with get_sessionmaker()() as db:
            redeemed = await tokens.consume(db, token=token, purpose=Purpose.RESET_PASSWORD)
            await db.commit()
            return redeemed is not None

    outcomes = await asyncio.gather(*(use() for _ in range(5)))

    assert sorted(outcomes) == [False] * 4 + [True]
