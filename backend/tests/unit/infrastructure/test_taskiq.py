"""The broker recipe, the middlewares and the worker command, without any server."""

from __future__ import annotations

import pytest
from taskiq import InMemoryBroker, TaskiqMessage
from taskiq_aio_pika import AioPikaBroker
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker
from typer.testing import CliRunner

import src.infrastructure.taskiq as taskiq_package
from src.infrastructure.config import settings
from src.infrastructure.logging.request_id import request_id_var
from src.infrastructure.taskiq import brokers, build_broker, default_broker
from src.infrastructure.taskiq.middlewares import RequestIdMiddleware, RetryMiddleware
from src.infrastructure.taskiq.runner import find_task_modules
from src.infrastructure.taskiq.testing import RecordingBroker
from src.interfaces.cli import cli

REDIS = "redis://127.0.0.1:6379/0"


def _middleware(broker, kind):
    [found] = [m for m in broker.middlewares if isinstance(m, kind)]
    return found


def _message(**labels) -> TaskiqMessage:
    return TaskiqMessage(task_id="1", task_name="t", labels=labels, args=[], kwargs={})


@pytest.mark.unit
def test_one_default_broker_under_one_name_and_in_memory_for_the_tests():
    assert taskiq_package.default_broker is brokers.default_broker
    assert isinstance(default_broker, InMemoryBroker)


@pytest.mark.unit
def test_every_broker_carries_the_request_id_and_retries_with_backoff():
    for broker in (
        build_broker(TASKIQ_BROKER="memory"),
        build_broker(TASKIQ_BROKER="redis", REDIS_URL=REDIS),
        build_broker(TASKIQ_BROKER="rabbitmq", REDIS_URL=None),
    ):
        _middleware(broker, RequestIdMiddleware)
        retry = _middleware(broker, RetryMiddleware)
        assert retry.default_retry_label is True  # every task retries unless it opts out
        # TASKIQ_MAX_RETRIES counts retries; taskiq counts attempts (the first included).
        assert retry.default_retry_count == settings.TASKIQ_MAX_RETRIES + 1


@pytest.mark.unit
def test_redis_broker_is_a_stream_with_a_redis_result_backend():
    broker = build_broker(TASKIQ_BROKER="redis", REDIS_URL=REDIS, TASKIQ_QUEUE_NAME="q1")
    assert isinstance(broker, RedisStreamBroker)
    assert broker.queue_name == "q1"
    assert isinstance(broker.result_backend, RedisAsyncResultBackend)
    assert _middleware(broker, RetryMiddleware).native_delay is False


@pytest.mark.unit
def test_redis_broker_needs_redis_url():
    with pytest.raises(RuntimeError, match="REDIS_URL"):
        build_broker(TASKIQ_BROKER="redis", REDIS_URL=None)


@pytest.mark.unit
def test_rabbitmq_broker_delays_retries_itself_and_keeps_results_in_redis_when_it_can():
    with_redis = build_broker(TASKIQ_BROKER="rabbitmq", REDIS_URL=REDIS)
    without = build_broker(TASKIQ_BROKER="rabbitmq", REDIS_URL=None)
    assert isinstance(with_redis, AioPikaBroker)
    assert _middleware(with_redis, RetryMiddleware).native_delay is True
    assert isinstance(with_redis.result_backend, RedisAsyncResultBackend)
    assert not isinstance(without.result_backend, RedisAsyncResultBackend)


@pytest.mark.unit
def test_backoff_doubles_up_to_the_cap():
    retry = RetryMiddleware(
        default_delay=1.0, use_delay_exponent=True, max_delay_exponent=5.0, use_jitter=False
    )
    delays = [retry.make_delay(_message(), attempt) for attempt in (1, 2, 3, 4)]
    assert delays == [1.0, 2.0, 4.0, 5.0]
    assert retry.make_delay(_message(delay="0.5"), 2) == 1.0  # per-task base delay label


@pytest.mark.unit
def test_jitter_adds_at_most_ten_percent():
    retry = RetryMiddleware(default_delay=2.0, use_delay_exponent=True, use_jitter=True)
    for _ in range(50):
        assert 4.0 <= retry.make_delay(_message(), 2) <= 4.4


@pytest.mark.unit
def test_request_id_goes_into_the_labels_when_there_is_one():
    middleware = RequestIdMiddleware()
    assert "request_id" not in middleware.pre_send(_message()).labels
    token = request_id_var.set("req-1")
    try:
        assert middleware.pre_send(_message()).labels["request_id"] == "req-1"
        # A retry keeps the id it was first sent with.
        assert middleware.pre_send(_message(request_id="first")).labels["request_id"] == "first"
    finally:
        request_id_var.reset(token)


@pytest.mark.unit
def test_request_id_is_current_while_the_task_runs_and_restored_after():
    middleware = RequestIdMiddleware()
    message = _message(request_id="from-http")
    assert request_id_var.get() is None
    middleware.pre_execute(message)
    assert request_id_var.get() == "from-http"
    middleware.post_execute(message, None)
    assert request_id_var.get() is None


@pytest.mark.unit
def test_task_modules_are_found_by_convention():
    assert "src.modules.user.tasks" in find_task_modules("src.modules")
    assert "src.modules.auth.tasks" in find_task_modules("src.modules")
    assert all(name.endswith(".tasks") for name in find_task_modules("src.modules"))


@pytest.mark.unit
async def test_recording_broker_records_and_runs_nothing():
    recorder = RecordingBroker()
    ran: list[int] = []

    @recorder.task(task_name="tests.record_me")
    async def record_me(value: int) -> None:
        ran.append(value)

    await record_me.kiq(7)
    [message] = recorder.sent_to(record_me)
    assert message.args == [7]
    assert recorder.sent_to("tests.record_me") == [message]
    assert ran == []


@pytest.mark.unit
def test_worker_refuses_the_in_memory_broker():
    result = CliRunner().invoke(cli, ["worker"])
    assert result.exit_code == 2
    assert "TASKIQ_BROKER" in result.output


@pytest.mark.unit
async def test_the_scheduler_reads_schedules_from_task_labels():
    from src.infrastructure.taskiq.scheduler import scheduler
    from tests.integration.tasks import worker_tasks

    assert scheduler.broker is default_broker
    [source] = scheduler.sources
    await source.startup()
    [tick] = [s for s in await source.get_schedules() if s.task_name == worker_tasks.tick.task_name]
    assert tick.interval == 1
