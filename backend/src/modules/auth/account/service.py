"""Account lifecycle rules: verify an email, reset or change a password, change the email.

Every "request" step that names an address (verify, reset) does no lookup in the request: it
hands the address to a background task and answers the same, so neither the body, the status
nor the time tells whether an account exists. Every "confirm" step consumes a single-use token
(`tokens.consume`) and commits the change with it in one transaction.

The emails these steps cause go through the task outbox (`src.infrastructure.taskiq.outbox`):
written in the transaction of the change they report, so a committed change always gets its
email and a rolled-back one never does, whether or not the broker answers at that moment.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.passwords import hash_password, verify_password
from src.infrastructure.taskiq import outbox
from src.modules.audit.context import AuditContext
from src.modules.audit.kinds import AuditKind
from src.modules.audit.service import Target, record
from src.modules.auth.account import tasks
from src.modules.auth.sessions import Principal, end_sessions
from src.modules.auth.throttle import Attempt, account_key, login_throttle
from src.modules.auth.tokens import Purpose, consume, peek
from src.modules.common.exceptions import (
    BadRequestError,
)
from src.modules.common.transactions import commit_or_conflict
from src.modules.user.crud import crud_users
from src.modules.user.password_policy import enforce_password_policy

INVALID_LINK = "This link is invalid, was already used or has expired: ask for a new one"
EMAIL_TAKEN = "This email is already registered"


class AccountService:
    async def request_link(self, *, kind: str, email: str, db: AsyncSession) -> None:
        """Queue the email of a "request" route (`verify` or `reset`) for `email`, whatever
        the address: no lookup here, the task decides (the answer must not tell)."""
        task = tasks.send_verification_email if kind == "verify" else tasks.send_password_reset
        await outbox.add(db, task, email)
        await db.commit()

    async def confirm_email(self, *, token: str, db: AsyncSession, audit: AuditContext) -> None:
        redeemed = await consume(db, token=token, purpose=Purpose.VERIFY_EMAIL)
        if redeemed is None:
            await db.commit()  # a token that failed the state check stays used up
            raise BadRequestError(INVALID_LINK)
        user_id = redeemed.user["id"]
        await crud_users.update(db, {"is_verified": True}, id=user_id, commit=False)
        # The link's holder proved the mailbox: the account's owner acted.
        record(db, AuditKind.EMAIL_VERIFIED, audit, target=Target.user(user_id), actor_id=user_id)
        await db.commit()

    async def reset_password(
        self, *, token: str, new_password: str, db: AsyncSession, audit: AuditContext
    ) -> int:
        """Set a new password through a reset link; every session of the account ends.
        Returns the user id.

        The link is looked at first (a bad password leaves it usable), the password hashed
        with no transaction open (SQLite would block every writer meanwhile), then the link
        consumed and the password written in one short transaction.
        """
        peeked = await peek(db, token=token, purpose=Purpose.RESET_PASSWORD)
        await db.commit()
        if peeked is None:
            raise BadRequestError(INVALID_LINK)
        _enforce_policy(new_password, peeked.user)
        new_hash = await hash_password(new_password)
        redeemed = await consume(db, token=token, purpose=Purpose.RESET_PASSWORD)
        if redeemed is None or redeemed.user["id"] != peeked.user["id"]:
            await db.commit()  # used meanwhile, expired, or the account changed
            raise BadRequestError(INVALID_LINK)
        user_id: int = redeemed.user["id"]
        # Following the emailed link proves the address too.
        changes = {"hashed_password": new_hash, "is_verified": True}
        await crud_users.update(db, changes, id=user_id, commit=False)
        await end_sessions(db, user_id=user_id)
        await outbox.add(db, tasks.send_password_changed_notice, user_id, True)
        record(db, AuditKind.PASSWORD_RESET, audit, target=Target.user(user_id), actor_id=user_id)
        await db.commit()
        return user_id

    async def change_password(
        self,
        *,
        principal: Principal,
        session_id: str,
        current_password: str,
        new_password: str,
        ip_address: str | None,
        db: AsyncSession,
        audit: AuditContext,
    ) -> None:
        """Needs the current password (throttled like a login); ends the other sessions."""
        _enforce_policy(
            new_password,
            {"username": principal.username, "email": principal.email, "name": principal.name},
        )
        await self._check_password(
            principal, session_id, current_password, ip_address, db, field="current_password"
        )
        new_hash = await hash_password(new_password)
        await crud_users.update(db, {"hashed_password": new_hash}, id=principal.id, commit=False)
        await end_sessions(db, user_id=principal.id, keep_session_id=session_id)
        await outbox.add(db, tasks.send_password_changed_notice, principal.id, False)
        record(db, AuditKind.PASSWORD_CHANGED, audit, target=Target.user(principal.id))
        await db.commit()

    async def request_email_change(
        self,
        *,
        principal: Principal,
        session_id: str,
        new_email: str,
        password: str,
        ip_address: str | None,
        db: AsyncSession,
        audit: AuditContext,
    ) -> None:
        """Check the password, then queue a confirmation link to `new_email` when it is free,
        or a notice to that address when an account uses it (the answer must not reveal
        which)."""
        await self._check_password(principal, session_id, password, ip_address, db)
        if new_email == principal.email:
            raise BadRequestError("This is already your email address")
        if await crud_users.exists(db, email=new_email):
            await outbox.add(db, tasks.send_email_in_use_notice, new_email)
        else:
            await outbox.add(db, tasks.send_email_change_confirmation, principal.id, new_email)
        # The same row whether or not the address is taken (a superuser reads the log).
        record(
            db,
            AuditKind.EMAIL_CHANGE_REQUESTED,
            audit,
            target=Target.user(principal.id),
            data={"new_email": new_email},
        )
        await db.commit()

    async def confirm_email_change(
        self, *, token: str, db: AsyncSession, audit: AuditContext
    ) -> dict[str, Any]:
        """Switch to the new address the link was sent to (which proves it: verified).
        Returns the old name and address, for the notice."""
        redeemed = await consume(db, token=token, purpose=Purpose.CHANGE_EMAIL)
        if redeemed is None or redeemed.new_email is None:
            await db.commit()
            raise BadRequestError(INVALID_LINK)
        user = redeemed.user
        async with commit_or_conflict(db, EMAIL_TAKEN):
            await crud_users.update(
                db,
                {"email": redeemed.new_email, "is_verified": True},
                id=user["id"],
                commit=False,
            )
            await outbox.add(
                db, tasks.send_email_changed_notice, user["name"], user["email"], redeemed.new_email
            )
            record(
                db,
                AuditKind.EMAIL_CHANGED,
                audit,
                target=Target.user(user["id"]),
                actor_id=user["id"],
                data={"old_email": user["email"], "new_email": redeemed.new_email},
            )
        return {"name": user["name"], "old_email": user["email"], "new_email": redeemed.new_email}

    async def _check_password(
        self,
        principal: Principal,
        session_id: str,
        password: str,
        ip_address: str | None,
        db: AsyncSession,
        *,
        field: str = "password",
    ) -> None:
        """The current password, re-checked for a sensitive change. Throttled per session
        (the login throttle's per-device budget), so a stolen session cannot be used to guess
        it, while strangers' failed logins do not block the owner's own session."""
        row = await crud_users.get(db, id=principal.id, is_deleted=False)
        await db.commit()  # release the connection while hashing
        attempt = Attempt(
            account=account_key(user_id=principal.id, identifier=""),
            ip=ip_address or "",
            device=f"session:{session_id}",
        )
        if login_throttle.enabled:
            await login_throttle.check(attempt)
        valid, _ = await verify_password(password, row["hashed_password"] if row else None)
        if not valid:
            if login_throttle.enabled:
                await login_throttle.record_failure(attempt)
            raise BadRequestError(f"{field} is incorrect")


def _enforce_policy(password: str, account: dict[str, Any]) -> None:
    """The password policy against the account's username, email and name (422 naming
    `new_password`)."""
    enforce_password_policy(
        password,
        field="new_password",
        username=account["username"],
        email=account["email"],
        name=account["name"],
    )
