"""Refuse request bodies over `MAX_REQUEST_BODY_BYTES` with a JSON 413, before anyone buffers them.

The edge middleware (`src/interfaces/edge.py`) refuses a declared oversize body
(`Content-Length`) at once, and counts the bytes of a body of undeclared length as they arrive.
Written here because Starlette's own limit answers with plain text, and every error of this API
is `{"detail": ...}` JSON.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import Message, Receive


class BodyTooLargeError(HTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it and the 413 handler answers."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"Request body is larger than {max_bytes} bytes")


def too_large_response(max_bytes: int) -> JSONResponse:
    error = BodyTooLargeError(max_bytes)
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


def counting_receive(receive: Receive, max_bytes: int) -> Receive:
    """`receive`, raising BodyTooLargeError once more than `max_bytes` of body arrived."""
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise BodyTooLargeError(max_bytes)
        return message

    return wrapped
