"""The Redis stream broker, with a periodic reclaim of a dead worker's messages.

taskiq-redis's `RedisStreamBroker` reads with `XREADGROUP` and hands unacknowledged messages
older than `idle_timeout` to itself with `XAUTOCLAIM`, but only right after a read that
returned new messages: a task held by a worker that was SIGKILLed waited until another task
arrived, however long that took. This subclass:

- reclaims on a timer, every quarter of `TASKIQ_REDELIVER_AFTER_SECONDS`, whether or not
  anything new arrived (the blocking read is cut to that interval), so a dead worker's task
  runs again on a live one within about 1.25 x that setting;
- keeps the messages its own running tasks hold fresh (`XCLAIM ... JUSTID` of its in-flight
  ids on the same timer, which resets their idle time without counting a delivery), so a
  live worker's long task is never handed to another worker: only a silent (dead) worker's
  messages go idle;
- survives Redis going away: the read loop logs once, waits and reconnects (the worker
  process keeps running), and a consumer group lost with Redis's data is declared again;
- declares its consumer group from the stream's start (`0`), not `$`: a group created after
  the relay already wrote messages (first start, or a Redis that lost its data) still reads
  them.

RabbitMQ needs none of this: a message a consumer took is redelivered by the server as soon
as that consumer's connection closes (a killed worker's TCP connection is reset), unacked.

Redis must keep what it accepted for the outbox's promise to hold: run it with AOF
(`appendonly yes`, `appendfsync everysec` or `always`); a Redis that restarts empty loses the
messages it had not delivered yet, and the outbox rows are already marked sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker

logger = logging.getLogger(__name__)

_RECONNECT_SECONDS = 1.0


class ReclaimingRedisStreamBroker(RedisStreamBroker):
    """`RedisStreamBroker` whose dead workers' messages are reclaimed on a timer (above)."""

    def __init__(self, url: str, *, redeliver_after_seconds: float, **options: Any) -> None:
        options.setdefault("consumer_id", "0")
        super().__init__(url, idle_timeout=int(redeliver_after_seconds * 1000), **options)
        self.redeliver_after_seconds = redeliver_after_seconds
        self.reclaim_interval = max(redeliver_after_seconds / 4, 0.25)
        # Cut the blocking read so the timer is looked at often enough.
        self.block = min(self.block, max(int(self.reclaim_interval * 1000), 100))
        self._in_flight: dict[Any, str] = {}  # message id -> stream, until acknowledged
        self._refresher: asyncio.Task[None] | None = None

    def _ack_generator(self, id: Any, queue_name: str) -> Callable[[], Awaitable[None]]:
        ack = super()._ack_generator(id=id, queue_name=queue_name)

        async def _ack() -> None:
            try:
                await ack()
            finally:  # unacknowledged (Redis down): left to go idle and be reclaimed
                self._in_flight.pop(id, None)

        return _ack

    def _message(self, stream: Any, msg_id: Any, fields: Any) -> AckableMessage:
        name = stream.decode() if isinstance(stream, bytes) else str(stream)
        self._in_flight[msg_id] = name
        return AckableMessage(data=fields[b"data"], ack=self._ack_generator(msg_id, name))

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_in_flight())
        next_reclaim = 0.0
        failing = False
        while True:
            try:
                async with Redis(connection_pool=self.connection_pool) as redis:
                    while True:
                        streams: dict[Any, Any] = {self.queue_name: ">", **self.additional_streams}
                        fetched: Any = await redis.xreadgroup(
                            self.consumer_group_name,
                            self.consumer_name,
                            streams,
                            block=self.block,
                            noack=False,
                            count=self.count,
                        )
                        if failing:
                            failing = False
                            logger.info("the task stream answers again")
                        for stream, messages in fetched or []:
                            for msg_id, fields in messages:
                                yield self._message(stream, msg_id, fields)
                        if time.monotonic() >= next_reclaim:
                            next_reclaim = time.monotonic() + self.reclaim_interval
                            for stream in [self.queue_name, *self.additional_streams]:
                                claimed: Any = await redis.xautoclaim(
                                    stream,
                                    self.consumer_group_name,
                                    self.consumer_name,
                                    min_idle_time=self.idle_timeout,
                                    count=self.unacknowledged_batch_size,
                                )
                                for msg_id, fields in claimed[1]:
                                    if not fields:  # trimmed meanwhile
                                        continue
                                    logger.warning(
                                        "task message %s was not finished by its worker within "
                                        "%.0f s (the worker died?): delivered again",
                                        msg_id,
                                        self.redeliver_after_seconds,
                                    )
                                    yield self._message(stream, msg_id, fields)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                logger.warning("the task stream's consumer group is gone (Redis lost its data?)")
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                    await self._declare_consumer_group()
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if not failing:
                    failing = True
                    logger.warning("the task stream does not answer (%s); reconnecting", error)
                await asyncio.sleep(_RECONNECT_SECONDS)

    async def _refresh_in_flight(self) -> None:
        """Reset the idle time of the messages this worker's running tasks hold."""
        while True:
            await asyncio.sleep(self.reclaim_interval)
            by_stream: dict[str, list[Any]] = {}
            for msg_id, stream in list(self._in_flight.items()):
                by_stream.setdefault(stream, []).append(msg_id)
            for stream, ids in by_stream.items():
                try:
                    async with Redis(connection_pool=self.connection_pool) as redis:
                        await redis.xclaim(
                            stream,
                            self.consumer_group_name,
                            self.consumer_name,
                            min_idle_time=0,
                            message_ids=ids,
                            justid=True,
                        )
                except Exception as error:  # Redis down: the read loop reports it
                    logger.debug("could not refresh in-flight task messages: %s", error)

    async def shutdown(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        await super().shutdown()
