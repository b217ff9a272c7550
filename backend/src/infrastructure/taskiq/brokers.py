"""The task broker: `default_broker`, built once from the settings when this module is imported.

`TASKIQ_BROKER` picks the transport:

- `memory` (the embedded profile and the tests): taskiq's `InMemoryBroker`. `.kiq()` runs the
  task in this process, in the background, like a worker would (its own database session,
  only committed data); `await drain(default_broker)` waits until none is running.
- `redis`: a `RedisStreamBroker` on `REDIS_URL` (consumer group, acknowledgements: a message a
  dead worker did not finish is delivered again within about 1.25 x
  `TASKIQ_REDELIVER_AFTER_SECONDS`, see `redis_stream.py`) with `RedisAsyncResultBackend`.
- `rabbitmq`: `AioPikaBroker` on `RABBITMQ_URL` (durable quorum queue, a delay queue for
  retries); results in Redis when `REDIS_URL` is set.

Every broker gets the same middlewares: the request id travels with the task, failed tasks
retry with exponential backoff; tasks from the outbox run through `OutboxReceiver` (a
delivery of a task id already done runs nothing), and every worker process runs an outbox
relay (`outbox.py`). `build_broker()` builds another broker from the same recipe
with some settings overridden (tests use it to send tasks to a real Redis or RabbitMQ).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from taskiq import AsyncBroker, InMemoryBroker, TaskiqEvents, TaskiqState
from taskiq.serializers import JSONSerializer

from src.infrastructure.config import Settings, settings
from src.infrastructure.taskiq import outbox
from src.infrastructure.taskiq.middlewares import (
    MetricsMiddleware,
    RequestIdMiddleware,
    RetryMiddleware,
)
from src.infrastructure.taskiq.outbox import OutboxReceiver, OutboxRelay

logger = logging.getLogger(__name__)

# Results are kept this long (Redis result backend), then expire.
RESULT_TTL_SECONDS = 24 * 60 * 60
# Longest wait between two attempts of a task, whatever the backoff says.
MAX_RETRY_DELAY_SECONDS = 60.0
# Redis stream length kept (approximately); acknowledged messages beyond it are trimmed.
STREAM_MAX_LENGTH = 100_000


def build_broker(config: Settings | None = None, **overrides: Any) -> AsyncBroker:
    """A broker for `config` (default: the app's settings) with `overrides` applied, e.g.
    `build_broker(TASKIQ_BROKER="redis", REDIS_URL="redis://127.0.0.1:6379/1")`."""
    config = (config or settings).model_copy(update=overrides)
    broker: AsyncBroker
    native_delay = False
    if config.TASKIQ_BROKER == "memory":
        broker = _memory_broker()
    elif config.TASKIQ_BROKER == "redis":
        broker = _redis_broker(config)
    elif config.TASKIQ_BROKER == "rabbitmq":
        broker = _rabbitmq_broker(config)
        native_delay = True
    else:  # pragma: no cover - the settings type allows nothing else
        raise ValueError(f"unknown TASKIQ_BROKER {config.TASKIQ_BROKER!r}")
    broker.add_middlewares(
        RequestIdMiddleware(),
        MetricsMiddleware(),
        RetryMiddleware(
            native_delay=native_delay,
            # taskiq counts attempts (the first included); the setting counts retries.
            default_retry_count=config.TASKIQ_MAX_RETRIES + 1,
            default_retry_label=True,
            default_delay=config.TASKIQ_RETRY_DELAY_SECONDS,
            use_delay_exponent=True,
            max_delay_exponent=MAX_RETRY_DELAY_SECONDS,
            use_jitter=True,
        ),
    )
    relay = OutboxRelay(broker, config=config)

    async def start_relay(_: TaskiqState) -> None:
        relay.start()  # every worker process publishes the outbox too

    async def stop_relay(_: TaskiqState) -> None:
        await relay.stop()

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, start_relay)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, stop_relay)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, _dispose_engine)
    return broker


def _memory_broker() -> InMemoryBroker:
    broker = InMemoryBroker()
    # The in-memory broker builds its receiver itself: the same one, idempotent for outbox tasks.
    broker.receiver = OutboxReceiver(
        broker=broker,
        executor=broker.executor,
        validate_params=True,
        max_async_tasks=30,
        propagate_exceptions=True,
    )
    return broker


def _require_redis_url(config: Settings, why: str) -> str:
    if not config.REDIS_URL:
        raise RuntimeError(f"{why} needs REDIS_URL (e.g. redis://127.0.0.1:6379/0)")
    return config.REDIS_URL


def _redis_result_backend(url: str) -> Any:
    from taskiq_redis import RedisAsyncResultBackend

    return RedisAsyncResultBackend(
        url,
        result_ex_time=RESULT_TTL_SECONDS,
        serializer=JSONSerializer(),  # not the default pickle: Redis content is not code
        prefix_str="taskiq-result",
    )


def _redis_broker(config: Settings) -> AsyncBroker:
    from src.infrastructure.taskiq.redis_stream import ReclaimingRedisStreamBroker

    url = _require_redis_url(config, "TASKIQ_BROKER=redis")
    broker = ReclaimingRedisStreamBroker(
        url,
        queue_name=config.TASKIQ_QUEUE_NAME,
        consumer_group_name=config.TASKIQ_QUEUE_NAME,
        maxlen=STREAM_MAX_LENGTH,
        redeliver_after_seconds=config.TASKIQ_REDELIVER_AFTER_SECONDS,
    )
    return broker.with_result_backend(_redis_result_backend(url))


def _rabbitmq_broker(config: Settings) -> AsyncBroker:
    from taskiq_aio_pika import AioPikaBroker, Exchange, Queue

    name = config.TASKIQ_QUEUE_NAME
    broker = AioPikaBroker(
        config.RABBITMQ_URL,
        exchange=Exchange(name=name),
        task_queues=[Queue(name=name)],
        # Retries wait here (per-message TTL), then dead-letter back to the task queue.
        delay_queue=Queue(name=f"{name}.delay"),
        dead_letter_queue=Queue(name=f"{name}.dead_letter"),
    )
    if config.REDIS_URL:
        broker = broker.with_result_backend(_redis_result_backend(config.REDIS_URL))
    return broker


async def _dispose_engine(_: TaskiqState) -> None:
    from src.infrastructure.database.session import dispose_engine

    await dispose_engine()


def runs_in_process(broker: AsyncBroker) -> bool:
    """True for the in-memory broker: tasks run in the process that sends them."""
    return isinstance(broker, InMemoryBroker)


async def drain(broker: AsyncBroker) -> None:
    """Wait until the in-memory broker runs no task, retries included (a retry starts while
    the failed attempt is finishing, so one `wait_all()` is not always enough), after
    publishing to it what this process's commits wrote to the outbox and is due
    (`outbox.flush`: without a running relay, as in tests, this is what sends them). Other
    brokers run their tasks elsewhere: nothing to wait for here."""
    if not isinstance(broker, InMemoryBroker):
        return
    while True:
        published = await outbox.flush(broker)
        # Finished tasks leave `_running_tasks` through a callback on the next loop turn.
        pending = [task for task in broker._running_tasks if not task.done()]
        if not pending and not published:
            return
        if pending:
            await asyncio.wait(pending)


async def start_broker(broker: AsyncBroker) -> None:
    """Connect a client (the API) to its broker. The in-memory broker needs nothing."""
    if not runs_in_process(broker):
        await broker.startup()


async def stop_broker(broker: AsyncBroker, *, wait_seconds: float = 10.0) -> None:
    """Disconnect; for the in-memory broker, let the tasks in flight finish first."""
    if runs_in_process(broker):
        try:
            await asyncio.wait_for(drain(broker), timeout=wait_seconds)
        except TimeoutError:
            logger.warning("in-process tasks still running after %.0f s; abandoned", wait_seconds)
        return
    await broker.shutdown()


default_broker: AsyncBroker = build_broker()
"""THE broker of the process. Declare tasks with `@default_broker.task`."""
