"""Background work of the user slice: the welcome email sent after sign-up."""

from __future__ import annotations

import logging
from typing import Annotated

from sqlalchemy import select, update
from taskiq import TaskiqDepends

from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.infrastructure.email import EmailMessage, EmailSender, get_email_sender
from src.infrastructure.taskiq import default_broker
from src.infrastructure.taskiq.dependencies import TaskDB, TaskReadDB
from src.modules.user.models import User

logger = logging.getLogger(__name__)

Sender = Annotated[EmailSender, TaskiqDepends(get_email_sender)]


def welcome_email(*, name: str, email: str) -> EmailMessage:
    return EmailMessage(
        to=email,
        subject=f"Welcome to {settings.APP_NAME}",
        text=(
            f"Hi {name},\n\n"
            f"your {settings.APP_NAME} account is ready. Sign in with your username or this "
            "email address.\n\nIf you did not sign up, ignore this message.\n"
        ),
    )


@default_broker.task(task_name="user.send_welcome_email")
async def send_welcome_email(user_id: int, read_db: TaskReadDB, db: TaskDB, sender: Sender) -> bool:
    """Send the welcome email once; True when this run sent it.

    Sent after the sign-up committed. A user who is gone (or never committed) gets nothing;
    a user who already got it (a redelivered or repeated task) gets nothing more. A failure
    to send raises, so the task is retried with backoff. The read goes through an autocommit
    session, so no write transaction is opened unless there is something to record.
    """
    row = (
        await read_db.execute(
            select(User.name, User.email, User.welcome_email_sent_at).where(
                User.id == user_id, User.is_deleted.is_(False)
            )
        )
    ).one_or_none()
    if row is None:
        logger.info("user %s not found: no welcome email", user_id)
        return False
    if row.welcome_email_sent_at is not None:
        logger.info("user %s already got the welcome email", user_id)
        return False

    await sender.send(welcome_email(name=row.name, email=row.email))
    await db.execute(
        update(User)
        .where(User.id == user_id, User.welcome_email_sent_at.is_(None))
        .values(welcome_email_sent_at=utcnow())
    )
    await db.commit()
    logger.info("welcome email sent to user %s", user_id)
    return True
