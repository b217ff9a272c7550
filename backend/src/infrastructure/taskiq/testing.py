"""For tests that assert a task was *sent* without running it.

    recorder = RecordingBroker()
    await committed_client.post("/api/v1/users/", json=payload)   # writes an outbox row
    await OutboxRelay(recorder).run_once()                         # the relay sends it here
    [message] = recorder.sent_to(send_welcome_email)
    assert message.args == [user_id]

Or send through it explicitly: `await my_task.kicker().with_broker(recorder).kiq()`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, BrokerMessage, TaskiqMessage

from src.infrastructure.taskiq.middlewares import RequestIdMiddleware


class RecordingBroker(AsyncBroker):
    """A broker that keeps every message it is given and runs nothing.

    It has the sending-side middleware of the real brokers, so the labels a message would
    carry (the request id) are there too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.add_middlewares(RequestIdMiddleware())
        self.messages: list[TaskiqMessage] = []

    async def kick(self, message: BrokerMessage) -> None:
        self.messages.append(self.formatter.loads(message.message))

    def listen(self) -> AsyncGenerator[bytes, None]:
        raise RuntimeError("RecordingBroker only records; nothing listens to it")

    def sent_to(self, task: AsyncTaskiqDecoratedTask[Any, Any] | str) -> list[TaskiqMessage]:
        """The messages sent to `task` (a task or its name), oldest first."""
        name = task if isinstance(task, str) else task.task_name
        return [message for message in self.messages if message.task_name == name]
