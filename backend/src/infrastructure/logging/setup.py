"""Structured logging with structlog: JSON lines outside local, readable lines in local.

Everything goes through one handler on the root logger, so uvicorn's, SQLAlchemy's and the
app's own records share the format, and every line carries the request id of the request (or
task) it belongs to.

The one exception is the access log, written once per request: it skips the standard library
(a LogRecord, handler lookups and a formatter cost a fifth of a trivial request) and renders its
line straight to the same stream with orjson, through structlog's filtering bound logger, which
drops lines below `LOG_LEVEL` for nearly nothing. Same format, same keys, same stream.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from src.infrastructure.config import Environment, settings
from src.infrastructure.logging.request_id import current_request_id


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    request_id = current_request_id()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _add_access_logger_name(_: Any, __: str, event: Any) -> Any:
    event["logger"] = "src.access"
    return event


def _orjson_text(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


class _StderrLogger:
    """Writes each line to whatever `sys.stderr` is at the time (tests and tools swap it)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        try:
            stream.write(message + "\n")
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream never fails a request
            pass

    debug = info = warning = error = critical = msg


def _renderer(as_json: bool) -> Any:
    if as_json:
        return structlog.processors.JSONRenderer(serializer=_orjson_text)
    return structlog.dev.ConsoleRenderer(colors=False)


def _build_access_log(as_json: bool) -> Any:
    return structlog.wrap_logger(
        _StderrLogger(),
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_request_id,
            structlog.processors.add_log_level,
            _add_access_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _renderer(as_json),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[settings.LOG_LEVEL]
        ),
        cache_logger_on_first_use=True,
    )


access_log: Any = None
"""The access log's logger (`access_log.info("request", ...)`); set by `configure_logging`."""


class TaskOutageFilter(logging.Filter):
    """A task that failed because a dependency is down (the database, a Redis) is logged as
    one warning line, without a trace and without the SQL or its parameters: it is retried,
    and the outage already shows in every request it fails. Other task failures keep their
    trace."""

    def filter(self, record: logging.LogRecord) -> bool:
        from src.infrastructure.availability import is_unavailable

        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not is_unavailable(exc):
            return True
        orig = getattr(exc, "orig", None) or exc
        reason = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
        record.msg = "task failed, a dependency is unavailable (retried if it can be): %s: %s"
        record.args = (type(orig).__name__, reason)
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


TASK_FAILURE_LOGGER = "taskiq.receiver.receiver"


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
    renderer = _renderer(as_json)
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
    task_log = logging.getLogger(TASK_FAILURE_LOGGER)
    task_log.filters = [f for f in task_log.filters if not isinstance(f, TaskOutageFilter)]
    task_log.addFilter(TaskOutageFilter())
    # The access line comes from the app's own middleware (with route and request id).
    logging.getLogger("uvicorn.access").disabled = True
    global access_log
    access_log = _build_access_log(as_json)
