"""Is an exception a dependency that is down or saturated (retry later), or a bug?

Shared by the HTTP error handlers (503 + Retry-After instead of 500) and the task log filter
(one warning line instead of a traceback).
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

# Raised when a server is down or saturated (ConnectionError: refused or reset while
# connecting); each gets the 503 handler directly, and `is_unavailable` recognises them when
# they reach the generic one.
UNAVAILABLE_ERRORS = (PoolTimeoutError, RedisConnectionError, RedisTimeoutError, ConnectionError)
# SQLSTATEs that mean the server cannot serve now: connection exceptions (class 08), too many
# connections, administrator or crash shutdown, starting up; and a transaction lost to a
# concurrent one (deadlock, serialization failure): the same request may pass if retried.
# (SQLite's "database is locked", the write lock not free within busy_timeout, is saturation
# too, like a pool timeout.)
_UNAVAILABLE_SQLSTATES = ("08", "53300", "57P01", "57P02", "57P03", "40P01", "40001")


def is_unavailable(exc: BaseException) -> bool:
    """A dependency that is down or saturated, as opposed to a bug (a missing table, a broken
    query, a session misused across tasks: those stay 500s, logged with their trace)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:  # SQLAlchemy recognised a lost connection
            return True
        code = str(getattr(exc.orig, "sqlstate", "") or "")
        if code.startswith(_UNAVAILABLE_SQLSTATES):
            return True
        if "database is locked" in str(exc.orig):  # SQLite: a writer waited busy_timeout
            return True
        cause = exc.orig.__cause__ if exc.orig is not None else None
        return isinstance(exc.orig, OSError) or isinstance(cause, OSError)
    return isinstance(exc, UNAVAILABLE_ERRORS)
