"""Single-use link tokens: verify an email, reset a password, confirm an email change, finish
an MFA sign-in.

A token is 256 random bits, handed out once (in an email link or a cookie); the database keeps
only `HMAC(SECRET_KEY, purpose, token)`, so a token is bound to its purpose and a leaked table
replays nothing. Each row records a fingerprint of the account's state at issue (its email and
password hash): `consume` refuses a token once that state changed, so a reset link dies when
the password changes and a verification link when the email changes. Consuming is one atomic
`UPDATE ... WHERE used_at IS NULL AND expires_at > now RETURNING`, so two concurrent uses of
one token cannot both succeed; `peek` looks a token up without using it (a pending MFA sign-in
stays usable through a mistyped code and is consumed only with the right one). Issuing a token
voids the account's earlier unused tokens of the same purpose (only the latest link works).

Hand-written: the single-use, purpose- and state-bound rules are this product's own; the
primitives (HMAC, `secrets`) are the standard library's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.tokens import hash_purpose_token, new_token, state_fingerprint
from src.infrastructure.database.models import utcnow
from src.modules.auth.models import AccountToken
from src.modules.user.models import User


class Purpose(StrEnum):
    VERIFY_EMAIL = "verify_email"
    RESET_PASSWORD = "reset_password"  # noqa: S105 - a purpose, not a password
    CHANGE_EMAIL = "change_email"
    MFA_LOGIN = "mfa_login"


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A valid token's account (the full `users` row) and payload: just consumed, or only
    looked at (`peek`)."""

    user: dict[str, Any]
    new_email: str | None


def fingerprint(user: dict[str, Any]) -> str:
    """The account state a token is bound to: email and password hash."""
    return state_fingerprint(user["email"], user["hashed_password"])


async def issue(
    db: AsyncSession,
    *,
    user: dict[str, Any],
    purpose: Purpose,
    ttl_seconds: int,
    new_email: str | None = None,
) -> str:
    """Add a token for `user` (a full `users` row) to the transaction and return it in clear.

    The caller commits. Earlier unused tokens of the same purpose for this user are voided.
    """
    now = utcnow()
    await db.execute(
        delete(AccountToken).where(
            AccountToken.user_id == user["id"],
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
        )
    )
    token = new_token()
    db.add(
        AccountToken(
            token_hash=hash_purpose_token(purpose.value, token),
            purpose=purpose.value,
            user_id=user["id"],
            fingerprint=fingerprint(user),
            new_email=new_email,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    await db.flush()
    return token


async def consume(db: AsyncSession, *, token: str, purpose: Purpose) -> Redeemed | None:
    """Use `token` up (in the caller's transaction) and return its account, or None when it is
    unknown, of another purpose, expired, used, or the account changed (or was deleted) since.

    The caller commits, whatever the outcome: a token that failed the state check is used up
    too, and must stay so.
    """
    now = utcnow()
    result = await db.execute(
        update(AccountToken)
        .where(
            AccountToken.token_hash == hash_purpose_token(purpose.value, token),
            AccountToken.purpose == purpose.value,
            AccountToken.used_at.is_(None),
            AccountToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(AccountToken.user_id, AccountToken.fingerprint, AccountToken.new_email)
    )
    claimed = result.first()
    if claimed is None:
        return None
    return await _redeemed(db, *claimed)


async def peek(db: AsyncSession, *, token: str, purpose: Purpose) -> Redeemed | None:
    """What `consume` would return, without using the token up: None when it is unknown, of
    another purpose, expired, used, or the account changed since. Writes nothing.

    Only a check before the real use: whoever acts on the token still `consume`s it, and only
    that atomic step decides between two concurrent uses.
    """
    claimed = (
        await db.execute(
            select(AccountToken.user_id, AccountToken.fingerprint, AccountToken.new_email).where(
                AccountToken.token_hash == hash_purpose_token(purpose.value, token),
                AccountToken.purpose == purpose.value,
                AccountToken.used_at.is_(None),
                AccountToken.expires_at > utcnow(),
            )
        )
    ).first()
    if claimed is None:
        return None
    return await _redeemed(db, *claimed)


async def _redeemed(
    db: AsyncSession, user_id: int, recorded: str, new_email: str | None
) -> Redeemed | None:
    """The token's account, if it still exists and its state is the one the token recorded."""
    row = (
        await db.execute(
            select(*User.__table__.columns).where(User.id == user_id, User.is_deleted.is_(False))
        )
    ).first()
    if row is None:
        return None
    user = dict(row._mapping)
    if fingerprint(user) != recorded:
        return None
    return Redeemed(user=user, new_email=new_email)


async def prune(db: AsyncSession) -> int:
    """Delete used and expired tokens; returns how many. The caller commits."""
    result = await db.execute(
        delete(AccountToken).where(
            AccountToken.used_at.is_not(None) | (AccountToken.expires_at <= utcnow())
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
