"""What the audit slice guards with permissions (see `src.modules.common.permissions`)."""

from __future__ import annotations

from typing import Final

from src.modules.common.permissions import Permission

AUDIT_READ: Final = Permission("audit.read", "Read the audit log (`GET /api/v1/audit-events`)")

PERMISSIONS: Final = (AUDIT_READ,)
