"""Background work of the user slice: the welcome email sent after sign-up, which carries the
email verification link."""

from __future__ import annotations

import logging
from typing import Annotated

from sqlalchemy import select, update
from taskiq import TaskiqDepends

from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.infrastructure.email import (
    EmailMessage,
    EmailSender,
    describe_duration,
    get_email_sender,
    render_email,
)
from src.infrastructure.taskiq import default_broker
from src.infrastructure.taskiq.dependencies import TaskDB, TaskReadDB
from src.modules.auth.account.tasks import verification_link
from src.modules.user.models import User

logger = logging.getLogger(__name__)

Sender = Annotated[EmailSender, TaskiqDepends(get_email_sender)]


def welcome_email(*, name: str, email: str, verify_url: str | None = None) -> EmailMessage:
    valid_for = describe_duration(settings.EMAIL_VERIFICATION_TOKEN_TTL_SECONDS)
    return render_email("welcome", to=email, name=name, verify_url=verify_url, valid_for=valid_for)


@default_broker.task(task_name="user.send_welcome_email")
async def send_welcome_email(user_id: int, read_db: TaskReadDB, db: TaskDB, sender: Sender) -> bool:
    """Send the welcome email once, with a verification link; True when this run sent it.

    Sent after the sign-up committed. A user who is gone (or never committed) gets nothing;
    a user who already got it (a redelivered or repeated task) gets nothing more. A failure
    to send raises, so the task is retried with backoff. The read goes through an autocommit
    session, so no write transaction is opened unless there is something to record.
    """
    row = (
        await read_db.execute(
            select(*User.__table__.columns).where(User.id == user_id, User.is_deleted.is_(False))
        )
    ).one_or_none()
    # Hand the read's connection back before the slow part: a worker runs as many tasks as its
    # pool has connections, and one holding two while mailing can starve the others (a
    # pool timeout after the email left would send it again on retry).
    await read_db.close()
    if row is None:
        logger.info("user %s not found: no welcome email", user_id)
        return False
    if row.welcome_email_sent_at is not None:
        logger.info("user %s already got the welcome email", user_id)
        return False

    user = dict(row._mapping)
    # The link's token is committed before the email leaves (a redelivery voids it).
    verify_url = None if user["is_verified"] else await verification_link(db, user)
    await sender.send(welcome_email(name=row.name, email=row.email, verify_url=verify_url))
    await db.execute(
        update(User)
        .where(User.id == user_id, User.welcome_email_sent_at.is_(None))
        .values(welcome_email_sent_at=utcnow())
    )
    await db.commit()
    logger.info("welcome email sent to user %s", user_id)
    return True
