from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditEventRead(BaseModel):
    """One security event. `data` holds small non-secret details of the kind (docs/audit.md)."""

    id: int
    created_at: datetime
    kind: str
    outcome: str
    reason: str | None
    actor_id: int | None
    target_type: str | None
    target_id: str | None
    target_user_id: int | None
    ip: str | None
    user_agent: str | None
    request_id: str | None
    data: dict[str, Any] | None
