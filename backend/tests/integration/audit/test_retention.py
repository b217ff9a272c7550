"""Retention: events older than `AUDIT_RETENTION_DAYS` go, in bounded batches, daily."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.infrastructure.database.session import get_sessionmaker
from src.modules.audit import service
from src.modules.audit.models import AuditEvent
from src.modules.audit.service import prune

pytestmark = pytest.mark.integration


def event(age_days: float) -> AuditEvent:
    return AuditEvent(
        kind="auth.logout", outcome="success", created_at=utcnow() - timedelta(days=age_days)
    )


async def test_prune_deletes_only_expired_rows_in_batches(db_session, monkeypatch):
    db_session.add_all([event(40) for _ in range(5)] + [event(29), event(0)])
    await db_session.commit()
    deletes = []
    execute = db_session.execute

    async def counting(statement, *args, **kwargs):
        result = await execute(statement, *args, **kwargs)
        if statement.is_delete:
            deletes.append(result.rowcount)
        return result

    monkeypatch.setattr(db_session, "execute", counting)

    pruned = await prune(db_session, retention_days=30, batch_size=2)

    assert pruned == 5
    assert deletes == [2, 2, 1]  # never more than a batch per statement
    left = await db_session.scalar(select(func.count()).select_from(AuditEvent))
    assert left == 2


async def test_the_daily_task_prunes_through_its_own_session(db_engine, clean_tables, monkeypatch):
    from src.modules.audit.tasks import prune_audit_events

    monkeypatch.setattr(settings, "AUDIT_RETENTION_DAYS", 7)
    async with get_sessionmaker()() as db:
        db.add_all([event(8), event(8), event(6)])
        await db.commit()

    result = await (await prune_audit_events.kiq()).wait_result(timeout=10)

    assert result.return_value == 2
    assert prune_audit_events.labels["schedule"] == [{"cron": "41 3 * * *"}]
    async with get_sessionmaker()() as db:
        assert await db.scalar(select(func.count()).select_from(AuditEvent)) == 1


def test_record_refuses_secret_details():
    from unittest.mock import MagicMock

    from src.modules.audit.context import SYSTEM
    from src.modules.audit.kinds import AuditKind

    db = MagicMock()
    for data in (
        {"password": "x"},
        {"new_password_hint": "x"},
        {"nested": {"api_token": "x"}},
        {"list": [{"recovery_code": "x"}]},
        {"TOTP_secret": "x"},
    ):
        with pytest.raises(ValueError, match="no secrets"):
            service.record(db, AuditKind.LOGOUT, SYSTEM, data=data)
    db.add.assert_not_called()
    service.record(db, AuditKind.LOGOUT, SYSTEM, data={"method": "password"})
    db.add.assert_called_once()
