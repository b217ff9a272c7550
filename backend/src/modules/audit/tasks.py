"""The audit slice's background work, found by `app worker`: the daily pruning of events older
than `AUDIT_RETENTION_DAYS`, in batches of `AUDIT_PRUNE_BATCH_SIZE` (one commit each)."""

from __future__ import annotations

import logging

from src.infrastructure.config import settings
from src.infrastructure.taskiq import default_broker
from src.infrastructure.taskiq.dependencies import TaskDB
from src.modules.audit.service import prune

logger = logging.getLogger(__name__)


@default_broker.task(task_name="audit.prune_events", schedule=[{"cron": "41 3 * * *"}])
async def prune_audit_events(db: TaskDB) -> int:
    """Delete audit events past the retention period (daily, 03:41 UTC); returns how many."""
    pruned = await prune(
        db,
        retention_days=settings.AUDIT_RETENTION_DAYS,
        batch_size=settings.AUDIT_PRUNE_BATCH_SIZE,
    )
    if pruned:
        logger.info(
            "pruned %d audit events older than %d days", pruned, settings.AUDIT_RETENTION_DAYS
        )
    return pruned
