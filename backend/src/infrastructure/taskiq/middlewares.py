"""Taskiq middlewares: the request id travels with the task, tasks are counted for metrics,
failed tasks retry with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import random
from contextvars import Token
from typing import Any

from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.kicker import AsyncKicker
from taskiq.middlewares import SmartRetryMiddleware

from src.infrastructure.logging.request_id import current_request_id, request_id_var
from src.infrastructure.observability.metrics import TASKS

REQUEST_ID_LABEL = "request_id"


class RequestIdMiddleware(TaskiqMiddleware):
    """Carries the HTTP request id into the task.

    Sending side: the current request id (if any) becomes the message's `request_id` label.
    Worker side: the label becomes the current request id while the task runs, so every log
    line the task writes carries it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._tokens: dict[int, Token[str | None]] = {}

    def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
        request_id = current_request_id()
        if request_id and REQUEST_ID_LABEL not in message.labels:
            message.labels[REQUEST_ID_LABEL] = request_id
        return message

    def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        request_id = message.labels.get(REQUEST_ID_LABEL)
        if request_id:
            self._tokens[id(message)] = request_id_var.set(str(request_id))
        return message

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        token = self._tokens.pop(id(message), None)
        if token is not None:
            # ValueError: set in another (copied) context, so there is nothing to undo here.
            with contextlib.suppress(ValueError):
                request_id_var.reset(token)


class MetricsMiddleware(TaskiqMiddleware):
    """Counts tasks for Prometheus (`tasks_total`): enqueued on the sending side, succeeded or
    failed where they run."""

    def post_send(self, message: TaskiqMessage) -> None:
        TASKS.labels(message.task_name, "enqueued").inc()

    def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        TASKS.labels(message.task_name, "failed" if result.is_err else "succeeded").inc()


class RetryMiddleware(SmartRetryMiddleware):
    """taskiq's `SmartRetryMiddleware` with exponential backoff on every broker.

    The delay before retry n (1, 2, ...) is `default_delay * 2 ** (n - 1)`, capped at
    `max_delay_exponent` seconds, plus up to 10 % random jitter. Brokers that can delay a
    message themselves (`native_delay`: RabbitMQ's delay queue) get a `delay` label; on the others
    (Redis, in-memory) the worker waits the delay, then re-sends the message. The failed
    message is acknowledged only after that, so a worker that dies meanwhile leaves it
    unacknowledged and the Redis stream delivers it again.

    Labels (per task, `@default_broker.task(...)`, or per call, `.kicker().with_labels(...)`):
    `retry_on_error=False` (no retries for this task), `delay` (base delay in seconds) and
    `max_retries`, which taskiq counts as attempts in all, the first one included (so
    `max_retries=5` means 4 retries; the broker-wide TASKIQ_MAX_RETRIES counts retries).
    """

    def __init__(self, *, native_delay: bool = False, **options: Any) -> None:
        super().__init__(**options)
        self.native_delay = native_delay

    async def on_send(
        self, kicker: AsyncKicker[Any, Any], message: TaskiqMessage, delay: float
    ) -> None:
        if self.native_delay or self.schedule_source is not None:
            await super().on_send(kicker, message, delay)
            return
        if delay > 0:
            await asyncio.sleep(delay)
        await kicker.kiq(*message.args, **message.kwargs)

    def make_delay(self, message: TaskiqMessage, retries: int) -> float:
        base = float(message.labels.get("delay", self.default_delay))
        delay = base * 2 ** (retries - 1) if self.use_delay_exponent else base
        delay = min(delay, self.max_delay_exponent)
        if self.use_jitter:
            delay += delay * 0.1 * random.random()  # noqa: S311 - spreading load, not crypto
        return delay
