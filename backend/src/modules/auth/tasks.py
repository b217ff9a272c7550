"""The auth slice's background work, found by `app worker` (it imports `<slice>.tasks`):
the account emails (`account/tasks.py`, imported here so the worker registers them) and the
hourly pruning of used and expired link tokens."""

from __future__ import annotations

import logging

from src.infrastructure.taskiq import default_broker
from src.infrastructure.taskiq.dependencies import TaskDB
from src.modules.auth import tokens
from src.modules.auth.account.tasks import (
    send_email_change_confirmation,
    send_email_changed_notice,
    send_email_in_use_notice,
    send_password_changed_notice,
    send_password_reset,
    send_security_notice,
    send_verification_email,
)

logger = logging.getLogger(__name__)

__all__ = [
    "prune_link_tokens",
    "send_email_change_confirmation",
    "send_email_changed_notice",
    "send_email_in_use_notice",
    "send_password_changed_notice",
    "send_password_reset",
    "send_security_notice",
    "send_verification_email",
]


@default_broker.task(task_name="auth.prune_link_tokens", schedule=[{"cron": "17 * * * *"}])
async def prune_link_tokens(db: TaskDB) -> int:
    """Delete used and expired link tokens (hourly); returns how many went."""
    pruned = await tokens.prune(db)
    await db.commit()
    if pruned:
        logger.info("pruned %d used or expired link tokens", pruned)
    return pruned
