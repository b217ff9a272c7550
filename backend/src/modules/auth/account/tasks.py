"""The account lifecycle's emails, sent by Taskiq tasks.

Tasks take ids and addresses, never tokens: a task issues its link token itself (committed
before the email goes out), so no secret ever sits in the broker. A redelivered task sends a
fresh link and voids the previous one (`tokens.issue`), so at most the latest link works.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq import TaskiqDepends

from src.infrastructure.config import settings
from src.infrastructure.email import (
    EmailSender,
    describe_duration,
    get_email_sender,
    render_email,
)
from src.infrastructure.taskiq import default_broker
from src.infrastructure.taskiq.dependencies import TaskDB
from src.modules.auth import tokens
from src.modules.auth.tokens import Purpose
from src.modules.user.models import User

logger = logging.getLogger(__name__)

Sender = Annotated[EmailSender, TaskiqDepends(get_email_sender)]


# Per purpose: the template, the frontend page of the link, the setting of its lifetime.
_LINKS: dict[Purpose, tuple[str, str, str]] = {
    Purpose.VERIFY_EMAIL: ("verify_email", "verify-email", "EMAIL_VERIFICATION_TOKEN_TTL_SECONDS"),
    Purpose.RESET_PASSWORD: (
        "reset_password",
        "reset-password",
        "PASSWORD_RESET_TOKEN_TTL_SECONDS",
    ),
    Purpose.CHANGE_EMAIL: (
        "change_email",
        "confirm-email-change",
        "EMAIL_CHANGE_TOKEN_TTL_SECONDS",
    ),
}


def link(page: str, token: str) -> str:
    """The frontend page that takes `?token=` and posts it to the API."""
    return f"{settings.FRONTEND_URL.rstrip('/')}/{page}?token={token}"


async def _user(db: AsyncSession, **where: Any) -> dict[str, Any] | None:
    conditions = [getattr(User, key) == value for key, value in where.items()]
    row = (
        await db.execute(
            select(*User.__table__.columns).where(*conditions, User.is_deleted.is_(False))
        )
    ).first()
    return dict(row._mapping) if row is not None else None


async def issue_link(
    db: AsyncSession, user: dict[str, Any], purpose: Purpose, *, new_email: str | None = None
) -> tuple[str, str]:
    """Issue and commit a `purpose` token for `user` (a full row): (its link, its lifetime in
    words). Committed before any email leaves, so the link works when it arrives."""
    _, page, ttl_setting = _LINKS[purpose]
    ttl: int = getattr(settings, ttl_setting)
    token = await tokens.issue(db, user=user, purpose=purpose, ttl_seconds=ttl, new_email=new_email)
    await db.commit()
    return link(page, token), describe_duration(ttl)


async def verification_link(db: AsyncSession, user: dict[str, Any]) -> str:
    """A verification link for `user` (the welcome email carries one)."""
    url, _ = await issue_link(db, user, Purpose.VERIFY_EMAIL)
    return url


async def _mail_link(
    db: AsyncSession,
    sender: EmailSender,
    user: dict[str, Any],
    purpose: Purpose,
    *,
    to: str | None = None,
    new_email: str | None = None,
) -> bool:
    url, valid_for = await issue_link(db, user, purpose, new_email=new_email)
    template = _LINKS[purpose][0]
    to = to or user["email"]
    await sender.send(
        render_email(template, to=to, name=user["name"], url=url, valid_for=valid_for)
    )
    return True


@default_broker.task(task_name="auth.send_verification_email")
async def send_verification_email(email: str, db: TaskDB, sender: Sender) -> bool:
    """Send a verification link to `email` if an unverified account has it (the request
    route knows only an address and answers the same either way)."""
    user = await _user(db, email=email.lower())
    if user is None or user["is_verified"]:
        return False
    return await _mail_link(db, sender, user, Purpose.VERIFY_EMAIL)


@default_broker.task(task_name="auth.send_password_reset")
async def send_password_reset(email: str, db: TaskDB, sender: Sender) -> bool:
    """Send a reset link to `email` if an account has it; nothing otherwise (the request route
    answers the same either way, and does no lookup itself)."""
    user = await _user(db, email=email.lower())
    if user is None:
        logger.info("password reset asked for an address with no account")
        return False
    return await _mail_link(db, sender, user, Purpose.RESET_PASSWORD)


@default_broker.task(task_name="auth.send_email_change_confirmation")
async def send_email_change_confirmation(
    user_id: int, new_email: str, db: TaskDB, sender: Sender
) -> bool:
    """Send the confirmation link to the new address (proving the owner reads it)."""
    user = await _user(db, id=user_id)
    if user is None:
        return False
    return await _mail_link(
        db, sender, user, Purpose.CHANGE_EMAIL, to=new_email, new_email=new_email
    )


# What a security notice says happened (the `security_notice` template's `event`).
MFA_ENABLED = "two-factor authentication was turned on"
MFA_DISABLED = "two-factor authentication was turned off"
RECOVERY_CODES = "new two-factor recovery codes were generated (the old ones stopped working)"


@default_broker.task(task_name="auth.send_security_notice")
async def send_security_notice(user_id: int, event: str, db: TaskDB, sender: Sender) -> bool:
    """Tell the account's address that a security setting changed (`event`)."""
    user = await _user(db, id=user_id)
    if user is None:
        return False
    await sender.send(
        render_email("security_notice", to=user["email"], name=user["name"], event=event)
    )
    return True


@default_broker.task(task_name="auth.send_email_in_use_notice")
async def send_email_in_use_notice(email: str, sender: Sender) -> bool:
    """An email change asked for an address an account already uses: tell that address."""
    await sender.send(render_email("email_in_use", to=email))
    return True


@default_broker.task(task_name="auth.send_email_changed_notice")
async def send_email_changed_notice(
    name: str, old_email: str, new_email: str, sender: Sender
) -> bool:
    """Tell the old address that the account's email changed."""
    await sender.send(render_email("email_changed", to=old_email, name=name, new_email=new_email))
    return True


@default_broker.task(task_name="auth.send_password_changed_notice")
async def send_password_changed_notice(
    user_id: int, reset: bool, db: TaskDB, sender: Sender
) -> bool:
    """Tell the account's address that its password changed."""
    user = await _user(db, id=user_id)
    if user is None:
        return False
    await sender.send(
        render_email("password_changed", to=user["email"], name=user["name"], reset=reset)
    )
    return True
