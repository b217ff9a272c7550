"""Retries with backoff and the request id, on an in-memory broker built by the app's recipe
(`build_broker`) with short delays: the same middlewares as on Redis and RabbitMQ."""

from __future__ import annotations

import time

import pytest

from src.infrastructure.config import settings
from src.infrastructure.logging.request_id import current_request_id, request_id_var
from src.infrastructure.taskiq import build_broker
from src.infrastructure.taskiq.brokers import drain

BASE_DELAY = 0.05
broker = build_broker(TASKIQ_BROKER="memory", TASKIQ_RETRY_DELAY_SECONDS=BASE_DELAY)
attempts: dict[str, list[float]] = {}


def _attempt(key: str) -> int:
    attempts.setdefault(key, []).append(time.monotonic())
    return len(attempts[key])


@broker.task(task_name="tests.retries.fail_twice")
async def fail_twice(key: str) -> str:
    attempt = _attempt(key)
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails on purpose")
    return f"ok on attempt {attempt}"


@broker.task(task_name="tests.retries.always_fails")
async def always_fails(key: str) -> None:
    _attempt(key)
    raise RuntimeError("never works")


@broker.task(task_name="tests.retries.no_retry", retry_on_error=False)
async def no_retry(key: str) -> None:
    _attempt(key)
    raise RuntimeError("not retried")


# taskiq's own label counts attempts, the first one included.
@broker.task(task_name="tests.retries.five_attempts", max_retries=5, delay=0.01)
async def five_attempts(key: str) -> None:
    _attempt(key)
    raise RuntimeError("never works")


@broker.task(task_name="tests.retries.whose_request")
async def whose_request() -> str | None:
    return current_request_id()


@pytest.mark.integration
async def test_a_task_that_fails_twice_then_succeeds_is_retried_with_growing_delays():
    task = await fail_twice.kiq("a")
    result = await task.wait_result(timeout=10, check_interval=0.02)

    assert not result.is_err
    assert result.return_value == "ok on attempt 3"
    first, second, third = attempts["a"]
    assert second - first >= BASE_DELAY  # 1st retry after the base delay...
    assert third - second >= 2 * BASE_DELAY  # ...the 2nd after twice as long


@pytest.mark.integration
async def test_retries_stop_after_the_configured_attempts():
    task = await always_fails.kiq("b")
    result = await task.wait_result(timeout=10, check_interval=0.02)
    await drain(broker)

    assert result.is_err
    assert len(attempts["b"]) == 1 + settings.TASKIQ_MAX_RETRIES  # the first + 3 retries


@pytest.mark.integration
async def test_a_task_can_opt_out_of_retries_or_ask_for_more():
    await no_retry.kiq("c")
    await five_attempts.kiq("d")
    await drain(broker)

    assert len(attempts["c"]) == 1
    assert len(attempts["d"]) == 5


@pytest.mark.integration
async def test_the_request_id_is_current_in_the_task():
    token = request_id_var.set("req-7")
    try:
        inside = await whose_request.kiq()
    finally:
        request_id_var.reset(token)
    outside = await whose_request.kiq()

    assert (await inside.wait_result(timeout=10)).return_value == "req-7"
    assert (await outside.wait_result(timeout=10)).return_value is None
