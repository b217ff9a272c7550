"""The task outbox: a task a request sends is a row committed with the request's change, and a
relay hands the rows to the broker. No task is lost to a broker that is down or restarting.

Why: sending after the commit (`kiq()` in the route) loses the task whenever the broker does
not answer at that moment (every sign-up during a Redis outage answered 201 and its welcome
email never left), and sending before the commit sends tasks for changes that roll back.
Writing the task in the same transaction makes it exactly as durable as the change: both
commit, or neither does.

    from src.infrastructure.taskiq import outbox

    user = await crud_users.create(db, ...)          # no commit yet
    await outbox.add(db, send_welcome_email, user.id)
    await db.commit()                                 # the user and its task, together

Rows (`task_outbox`) carry a task id (a random hex string), the task's name, its arguments
(JSON: ids and addresses, never secrets) and labels (the request id). The relay
(`OutboxRelay`):

1. reads whether anything is due (an autocommit read: cheap, and on SQLite it takes no write
   lock while nothing is to do);
2. claims a batch of due rows in a short transaction (`FOR UPDATE SKIP LOCKED` on Postgres,
   so several relays share the work; SQLite has one writer anyway) by moving their
   `next_attempt_at` `OUTBOX_CLAIM_SECONDS` ahead: a relay that dies holding them only delays
   them;
3. publishes each with `kicker().with_task_id(row id)` (no transaction open, each publish
   bounded by `OUTBOX_PUBLISH_TIMEOUT_SECONDS`);
4. marks the published rows sent (`sent_at`), and only those. A refused row gets
   `attempts + 1`, `next_attempt_at` after a doubling backoff (`OUTBOX_BACKOFF_BASE_SECONDS`
   up to `OUTBOX_BACKOFF_MAX_SECONDS`, 10 % jitter) and `last_error` (the exception's type and
   message, URLs' credentials masked, 200 characters); the rest of the batch waits as long,
   without an attempt counted (the broker is down, no point trying each). A row is never given
   up on. The relay logs one warning when the broker starts refusing and one line when it
   accepts again, not one per row per second.

Where relays run: in every `app worker` process (started by the broker's worker-startup
event) and in the API process (`OUTBOX_RELAY_IN_API`, always for the memory broker, whose
tasks run in the API). A commit that added rows wakes the relay of its own process at once
(a SQLAlchemy `after_commit` hook), so a task reaches the broker within milliseconds; the
others poll every `OUTBOX_POLL_INTERVAL_SECONDS`.

Delivery is at least once: a relay that published and died before marking the row sent
publishes it again, and the Redis stream hands a dead worker's message to another. Consumers
make it harmless (`OutboxReceiver`): before running a task that came from the outbox, the
consumer claims its row (`started_at`, one conditional UPDATE); a delivery of a task id
already done (`done_at`) is skipped, and one that arrives while another run of it is in
progress waits for that run's outcome (two copies published around a broker restart arrive
together). A failed run clears `started_at` so its retry goes at once; a claim older than
`TASKIQ_REDELIVER_AFTER_SECONDS` (its worker died) no longer blocks. What is promised,
precisely: a committed task runs to success at least once (retries with backoff,
`RetryMiddleware`), and a delivery after a recorded success, or during a live run, does not
run it again. Not promised: a run that crashes after its side effect and before `done_at`
(milliseconds) repeats the effect once, and so does a run still going after
`TASKIQ_REDELIVER_AFTER_SECONDS` when a copy arrives; tasks guard what must never repeat with
their own state too (the welcome email checks and sets `users.welcome_email_sent_at`; a
repeated link email voids the previous link).

Sent rows are kept `OUTBOX_KEEP_SENT_DAYS` (they answer "was it done?" for late duplicates),
then the relay deletes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, delete, event, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, Session, mapped_column
from taskiq import AsyncBroker, AsyncTaskiqDecoratedTask, TaskiqMessage, TaskiqResult
from taskiq.acks import AckController
from taskiq.kicker import AsyncKicker
from taskiq.receiver import Receiver

from src.infrastructure.config import Settings, settings
from src.infrastructure.database.models import Base, utcnow
from src.infrastructure.logging.request_id import current_request_id

logger = logging.getLogger(__name__)

OUTBOX_LABEL = "outbox"
"""Label of a message the relay sent: its task id is a `task_outbox` row."""
REQUEST_ID_LABEL = "request_id"
_ERROR_LENGTH = 200
_PRUNE_EVERY_SECONDS = 3600.0


class TaskOutbox(Base):
    """A task to send (`next_attempt_at` set) or sent (`sent_at` set, `next_attempt_at` NULL),
    and whether a consumer finished it (`done_at`)."""

    __tablename__ = "task_outbox"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    task_name: Mapped[str] = mapped_column(String(255))
    args: Mapped[list[Any]] = mapped_column(JSON)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Due when <= now; NULL once sent. Indexed: the relay's one lookup.
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(_ERROR_LENGTH), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # A consumer runs it since (cleared when that run fails); a run that succeeded.
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    done_at: Mapped[datetime | None] = mapped_column(default=None)


# --- writing -------------------------------------------------------------------------------

_PENDING = "outbox_pending"  # Session.info key: this transaction added outbox rows


async def add(
    db: AsyncSession, task: AsyncTaskiqDecoratedTask[Any, Any], /, *args: Any, **kwargs: Any
) -> str:
    """Add `task(*args, **kwargs)` to the outbox in `db`'s transaction; returns its task id.

    Nothing is committed here: the caller's commit makes the task durable together with the
    change that caused it, and a rollback discards both. Arguments must be JSON values (ids,
    addresses), never secrets: they are stored as they are.
    """
    labels: dict[str, Any] = {**task.labels, OUTBOX_LABEL: True}
    request_id = current_request_id()
    if request_id:
        labels[REQUEST_ID_LABEL] = request_id
    task_id = uuid.uuid4().hex
    db.add(
        TaskOutbox(
            id=task_id,
            task_name=task.task_name,
            args=list(args),
            kwargs=kwargs,
            labels=labels,
            created_at=utcnow(),
            next_attempt_at=utcnow(),
            attempts=0,
        )
    )
    db.sync_session.info[_PENDING] = True
    return task_id


# A commit that added rows wakes this process's relays (and marks the process "dirty" for
# `flush`). `after_commit` runs on the event loop's thread (SQLAlchemy's asyncio greenlet).
_wakeups: set[asyncio.Event] = set()
_dirty = False


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    global _dirty
    if session.info.pop(_PENDING, False):
        _dirty = True
        for wakeup in _wakeups:
            wakeup.set()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- sending -------------------------------------------------------------------------------

_CREDENTIALS = re.compile(r"(//)[^/@\s]*@")


def describe_error(error: BaseException) -> str:
    """The exception's type and message (and its cause's: taskiq wraps the broker's error),
    short, with any URL's credentials masked."""
    text = f"{type(error).__name__}: {error}".strip()
    if error.__cause__ is not None:
        text += f" ({type(error.__cause__).__name__}: {error.__cause__})"
    return _CREDENTIALS.sub(r"\1***@", text)[:_ERROR_LENGTH]


def backoff_seconds(attempts: int, config: Settings = settings) -> float:
    """Wait after the `attempts`-th refusal: BASE * 2 ** (attempts - 1), at most MAX, + jitter."""
    base = float(config.OUTBOX_BACKOFF_BASE_SECONDS)
    delay: float = min(base * 2.0 ** max(attempts - 1, 0), config.OUTBOX_BACKOFF_MAX_SECONDS)
    return delay + delay * 0.1 * random.random()  # noqa: S311 - spreading load, not crypto


@dataclass(frozen=True)
class _Row:
    id: str
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any]
    labels: dict[str, Any]
    attempts: int


def _due(now: datetime) -> Any:
    return TaskOutbox.next_attempt_at <= now


class OutboxRelay:
    """Publishes due outbox rows to `broker` (see the module docstring).

    `run_once()` does one pass; `start()` runs passes in the background until `stop()`: after
    each pass it waits for a wake-up (a commit in this process that added rows) or
    `OUTBOX_POLL_INTERVAL_SECONDS`.
    """

    def __init__(
        self,
        broker: AsyncBroker,
        *,
        config: Settings | None = None,
        sessionmaker: Callable[[], async_sessionmaker[AsyncSession]] | None = None,
        read_sessionmaker: Callable[[], async_sessionmaker[AsyncSession]] | None = None,
    ) -> None:
        from src.infrastructure.database.session import get_read_sessionmaker, get_sessionmaker

        self.broker = broker
        self.config = config or settings
        self._sessionmaker = sessionmaker or get_sessionmaker
        self._read_sessionmaker = read_sessionmaker or get_read_sessionmaker
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._refusing = False  # the broker refused the last attempt (one log per outage)
        self._db_failing = False
        self._next_prune = 0.0
        self.published = 0  # rows published by this relay, for tests and logs

    # One pass --------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Publish the rows due now (one batch); returns how many the broker accepted."""
        now = utcnow()
        rows = await self._claim(now)
        if not rows:
            return 0
        sent: list[str] = []
        failed: tuple[_Row, BaseException] | None = None
        for index, row in enumerate(rows):
            try:
                await asyncio.wait_for(
                    self._publish(row), timeout=self.config.OUTBOX_PUBLISH_TIMEOUT_SECONDS
                )
            except Exception as error:
                failed = (row, error)
                waiting = rows[index + 1 :]
                break
            sent.append(row.id)
        else:
            waiting = []
        await self._record(sent, failed, waiting)
        self.published += len(sent)
        return len(sent)

    async def _claim(self, now: datetime) -> list[_Row]:
        async with self._read_sessionmaker()() as read:
            anything = await read.scalar(select(TaskOutbox.id).where(_due(now)).limit(1))
        if anything is None:
            return []
        async with self._sessionmaker()() as db:
            result = await db.execute(
                select(
                    TaskOutbox.id,
                    TaskOutbox.task_name,
                    TaskOutbox.args,
                    TaskOutbox.kwargs,
                    TaskOutbox.labels,
                    TaskOutbox.attempts,
                )
                .where(_due(now))
                .order_by(TaskOutbox.next_attempt_at)
                .limit(self.config.OUTBOX_BATCH_SIZE)
                .with_for_update(skip_locked=True)
            )
            rows = [_Row(*row) for row in result.all()]
            if rows:
                until = now + timedelta(seconds=self.config.OUTBOX_CLAIM_SECONDS)
                await db.execute(
                    update(TaskOutbox)
                    .where(TaskOutbox.id.in_([row.id for row in rows]))
                    .values(next_attempt_at=until)
                )
            await db.commit()
        return rows

    async def _publish(self, row: _Row) -> None:
        kicker: AsyncKicker[Any, Any] = AsyncKicker(
            task_name=row.task_name, broker=self.broker, labels=dict(row.labels)
        )
        await kicker.with_task_id(row.id).kiq(*row.args, **row.kwargs)

    async def _record(
        self,
        sent: list[str],
        failed: tuple[_Row, BaseException] | None,
        waiting: list[_Row],
    ) -> None:
        now = utcnow()
        async with self._sessionmaker()() as db:
            if sent:
                await db.execute(
                    update(TaskOutbox)
                    .where(TaskOutbox.id.in_(sent), TaskOutbox.sent_at.is_(None))
                    .values(sent_at=now, next_attempt_at=None, last_error=None)
                )
            if failed is not None:
                row, error = failed
                delay = backoff_seconds(row.attempts + 1, self.config)
                retry_at = now + timedelta(seconds=delay)
                await db.execute(
                    update(TaskOutbox)
                    .where(TaskOutbox.id == row.id, TaskOutbox.sent_at.is_(None))
                    .values(
                        attempts=TaskOutbox.attempts + 1,
                        next_attempt_at=retry_at,
                        last_error=describe_error(error),
                    )
                )
                if waiting:
                    await db.execute(
                        update(TaskOutbox)
                        .where(TaskOutbox.id.in_([r.id for r in waiting]))
                        .where(TaskOutbox.sent_at.is_(None))
                        .values(next_attempt_at=retry_at)
                    )
            await db.commit()
        if failed is not None:
            row, error = failed
            if not self._refusing:
                self._refusing = True
                logger.warning(
                    "outbox: the broker refused task %s (%s); %d task(s) wait, retried with "
                    "backoff (logged once until it accepts again)",
                    row.task_name,
                    describe_error(error),
                    1 + len(waiting),
                )
            else:
                logger.debug("outbox: the broker still refuses (%s)", describe_error(error))
        elif sent and self._refusing:
            self._refusing = False
            logger.info("outbox: the broker accepts tasks again")

    async def _maybe_prune(self, now: datetime) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + _PRUNE_EVERY_SECONDS
        before = now - timedelta(days=self.config.OUTBOX_KEEP_SENT_DAYS)
        async with self._sessionmaker()() as db:
            result = await db.execute(
                delete(TaskOutbox).where(
                    TaskOutbox.sent_at.is_not(None), TaskOutbox.sent_at < before
                )
            )
            await db.commit()
        pruned = getattr(result, "rowcount", 0) or 0
        if pruned:
            logger.info(
                "outbox: deleted %d sent task(s) older than %d days",
                pruned,
                self.config.OUTBOX_KEEP_SENT_DAYS,
            )

    # The loop ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run passes in the background (this event loop) until `stop()`."""
        if self._task is None:
            _wakeups.add(self._wakeup)
            self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        """Let the pass in progress finish (bounded), then end the loop. What it did not send
        stays in the table for the next relay."""
        _wakeups.discard(self._wakeup)
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wakeup.set()
        try:
            await asyncio.wait_for(task, timeout=self.config.OUTBOX_PUBLISH_TIMEOUT_SECONDS + 5)
        except TimeoutError:
            logger.warning("outbox relay: the pass in progress was abandoned on shutdown")

    def wake(self) -> None:
        self._wakeup.set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wakeup.clear()
            published = 0
            try:
                published = await self.run_once()
                if not published:
                    await self._maybe_prune(utcnow())
                if self._db_failing:
                    self._db_failing = False
                    logger.info("outbox: the database answers again")
            except Exception as error:
                if not self._db_failing:
                    self._db_failing = True
                    logger.warning("outbox relay pass failed (%s); retrying", describe_error(error))
            if published >= self.config.OUTBOX_BATCH_SIZE or self._stopping:
                continue  # more are due (or stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wakeup.wait(), timeout=self.config.OUTBOX_POLL_INTERVAL_SECONDS
                )


async def flush(broker: AsyncBroker) -> int:
    """Publish to `broker` what commits of this process added and is due, until nothing is
    (for the in-memory broker's `drain`: tests wait for tasks a request wrote). Returns how
    many rows went; does nothing (no database access) if no commit added a row since the
    last flush that found nothing."""
    global _dirty
    if not _dirty:
        return 0
    relay = OutboxRelay(broker)
    total = 0
    while published := await relay.run_once():
        total += published
    if not total:
        _dirty = False
    return total


# --- receiving: idempotent consumers -------------------------------------------------------


_RUN, _DONE, _BUSY = "run", "done", "busy"
_BUSY_POLL_SECONDS = 0.2


async def claim_run(task_id: str, lease_seconds: float) -> str:
    """Claim task `task_id` for one run: "run" (claimed, or no such row: not from the outbox,
    or pruned), "done" (a run already succeeded) or "busy" (another run started less than
    `lease_seconds` ago and has not finished). One conditional UPDATE, so of two deliveries
    running at once only one gets "run"."""
    from src.infrastructure.database.session import get_sessionmaker

    now = utcnow()
    async with get_sessionmaker()() as db:
        claimed = await db.execute(
            update(TaskOutbox)
            .where(TaskOutbox.id == task_id, TaskOutbox.done_at.is_(None))
            .where(
                (TaskOutbox.started_at.is_(None))
                | (TaskOutbox.started_at < now - timedelta(seconds=lease_seconds))
            )
            .values(started_at=now)
        )
        if getattr(claimed, "rowcount", 0):
            await db.commit()
            return _RUN
        row = (await db.execute(select(TaskOutbox.done_at).where(TaskOutbox.id == task_id))).first()
        await db.commit()
    if row is None:
        return _RUN
    return _DONE if row.done_at is not None else _BUSY


async def finish_run(task_id: str, *, succeeded: bool) -> None:
    """Record the run's end: done, or (failed) free for the retry to claim at once."""
    from src.infrastructure.database.session import get_sessionmaker

    values: dict[str, Any] = {"done_at": utcnow()} if succeeded else {"started_at": None}
    async with get_sessionmaker()() as db:
        await db.execute(
            update(TaskOutbox)
            .where(TaskOutbox.id == task_id, TaskOutbox.done_at.is_(None))
            .values(**values)
        )
        await db.commit()


class OutboxReceiver(Receiver):
    """taskiq's receiver, idempotent for outbox tasks: one run per task id at a time, none
    after a success (see the module docstring for exactly what this promises). Messages not
    from the outbox run as usual, with no database access.

    `app worker` runs with it (`--receiver`), and the in-memory broker uses it too."""

    async def run_task(
        self,
        target: Callable[..., Any],
        message: TaskiqMessage,
        ack_controller: AckController | None = None,
    ) -> TaskiqResult[Any]:
        # Brokers may carry labels as strings ("True").
        if str(message.labels.get(OUTBOX_LABEL, "")).lower() not in {"1", "true"}:
            return await super().run_task(target, message, ack_controller)
        task_id = message.task_id
        # A run that started and went silent this long (its worker died) no longer blocks:
        # the same bound after which the broker hands a dead worker's message to another.
        lease = settings.TASKIQ_REDELIVER_AFTER_SECONDS
        try:
            state = await claim_run(task_id, lease)
            while state == _BUSY:  # the same task id runs elsewhere: wait for its outcome
                await asyncio.sleep(_BUSY_POLL_SECONDS)
                state = await claim_run(task_id, lease)
        except Exception as error:  # the database is down: running is the safe side
            logger.warning("could not claim task %s: %s", task_id, describe_error(error))
            state = _RUN
        if state == _DONE:
            logger.info(
                "task %s %s was already done: delivered again, not run",
                message.task_name,
                task_id,
            )
            return TaskiqResult(
                is_err=False, return_value=None, execution_time=0.0, labels=message.labels
            )
        result = await super().run_task(target, message, ack_controller)
        try:
            await finish_run(task_id, succeeded=not result.is_err)
        except Exception as error:
            logger.warning(
                "task %s ran but could not be recorded: %s", task_id, describe_error(error)
            )
        return result
