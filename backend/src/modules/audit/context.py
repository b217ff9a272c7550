"""Who did it, from where: the request facts every audit row carries.

`AuditContext` is built per request by the `Audit` dependency (`dependencies.py`) from what
the request already holds: the client IP, the User-Agent, the request id of the logging
contextvars, and the caller the auth dependencies resolved (read when the row is written, so
the order in which a route declares its dependencies does not matter). It costs no query.
Work that no request started (the CLI, tasks) uses `SYSTEM`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

USER_AGENT_MAX = 512


def _nobody() -> int | None:
    return None


@dataclass(frozen=True, slots=True)
class AuditContext:
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    # The caller's user id, looked up when a row is written (None: anonymous or no request).
    actor: Callable[[], int | None] = field(default=_nobody, repr=False, compare=False)
    via: str | None = None  # "cli", "task": work that no request started

    @property
    def actor_id(self) -> int | None:
        return self.actor()


SYSTEM = AuditContext(via="cli")
