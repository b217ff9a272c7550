"""Structured logging with structlog: JSON lines outside local, readable lines in local.

Everything goes through one handler on the root logger, so uvicorn's, SQLAlchemy's and the
app's own records share the format, and every line carries the request id of the request (or
task) it belongs to.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

from src.infrastructure.config import Environment, settings
from src.infrastructure.logging.request_id import current_request_id


def _add_request_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def configure_logging() -> None:
    """Idempotent: safe to call from the app factory, the CLI and the worker."""
    as_json = settings.LOG_JSON
    if as_json is None:
        as_json = settings.ENVIRONMENT not in (Environment.LOCAL, Environment.PYTEST)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.processors.format_exc_info],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.set_name("structlog")
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != "structlog"] + [handler]
    root.setLevel(settings.LOG_LEVEL)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    # The access line comes from the app's own middleware (with route and request id).
    logging.getLogger("uvicorn.access").disabled = True
