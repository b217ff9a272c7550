"""`Audit`: the request's `AuditContext`, for routes whose service records an event.

Built from the request alone (client IP, User-Agent, the request id of the logging
contextvars); the actor is the caller the auth dependencies resolved for this request, read
when a row is written. No query, no Redis call: nothing on the hot path.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.logging.request_id import current_request_id
from src.modules.audit.context import AuditContext
from src.modules.auth.dependencies import resolved_caller_id


async def audit_context(request: Request) -> AuditContext:
    return AuditContext(
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        request_id=current_request_id(),
        actor=lambda: resolved_caller_id(request),
    )


Audit = Annotated[AuditContext, Depends(audit_context)]
