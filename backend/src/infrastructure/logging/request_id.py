"""Request ids: accept a sane `X-Request-ID` or make one, and expose it to logs and tasks.

The edge middleware (`src/interfaces/edge.py`) calls `request_id_for` once per request, sets
`request_id_var` for the request's duration and echoes the id in the response header.
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

HEADER = "X-Request-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return request_id_var.get()


def request_id_for(incoming: bytes | None) -> str:
    """The client's id when it is sane (letters, digits, `._:-`, at most 128), else a new one."""
    if incoming:
        text = incoming.decode("latin-1")
        if _VALID.match(text):
            return text
    return os.urandom(16).hex()
