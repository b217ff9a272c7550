"""Running taskiq's worker and scheduler for `app worker` / `app scheduler`."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import pkgutil
import signal
from collections.abc import Sequence

from src.infrastructure.config import settings

BROKER_PATH = "src.infrastructure.taskiq:default_broker"
# Idempotent for outbox tasks: a delivery of a task id already done runs nothing.
RECEIVER_PATH = "src.infrastructure.taskiq.outbox:OutboxReceiver"
SCHEDULER_PATH = "src.infrastructure.taskiq.scheduler:scheduler"


def find_task_modules(package: str) -> list[str]:
    """`<package>.<slice>.tasks` for every slice of `package` that has a `tasks` module."""
    root = importlib.import_module(package)
    found = []
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        name = f"{package}.{info.name}.tasks"
        if info.ispkg and importlib.util.find_spec(name) is not None:
            found.append(name)
    return found


def import_modules(modules: Sequence[str]) -> None:
    """Import the task modules up front, so a broken one fails the command loudly (taskiq's
    own import only logs a warning and runs without the tasks)."""
    from taskiq.cli.utils import add_cwd_in_path

    with add_cwd_in_path():  # as taskiq does: modules next to the current folder import too
        for module in modules:
            importlib.import_module(module)


def run_worker(
    modules: Sequence[str],
    *,
    workers: int,
    max_async_tasks: int,
    max_prefetch: int = 0,
    shutdown_timeout: float = 30.0,
) -> int:
    """Run `workers` worker processes for the default broker; returns the exit status."""
    from taskiq.cli.common_args import LogLevel
    from taskiq.cli.worker.args import WorkerArgs
    from taskiq.cli.worker.run import run_worker as taskiq_run_worker

    from src.infrastructure.logging.setup import configure_logging

    configure_logging()  # the app's format; lines carry the request id of the running task
    import_modules(modules)
    args = WorkerArgs(
        broker=BROKER_PATH,
        receiver=RECEIVER_PATH,
        modules=list(modules),
        tasks_pattern=(),
        configure_logging=False,  # the app's, inherited by the worker processes
        log_level=LogLevel[settings.LOG_LEVEL],
        workers=workers,
        max_async_tasks=max_async_tasks,
        max_prefetch=max_prefetch,
        shutdown_timeout=shutdown_timeout,
        wait_tasks_timeout=shutdown_timeout,
    )
    return taskiq_run_worker(args) or 0


def run_scheduler(modules: Sequence[str], *, skip_first_run: bool = False) -> None:
    """Run the scheduler until SIGINT or SIGTERM."""
    from taskiq.cli.common_args import LogLevel
    from taskiq.cli.scheduler.args import SchedulerArgs
    from taskiq.cli.scheduler.run import run_scheduler as taskiq_run_scheduler

    from src.infrastructure.logging.setup import configure_logging

    configure_logging()
    import_modules(modules)
    args = SchedulerArgs(
        scheduler=SCHEDULER_PATH,
        modules=list(modules),
        tasks_pattern=(),
        configure_logging=False,
        log_level=LogLevel[settings.LOG_LEVEL],
        skip_first_run=skip_first_run,
    )

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        # Cancelled by a signal: taskiq shuts the broker and the sources down on its way out.
        with contextlib.suppress(asyncio.CancelledError):
            await taskiq_run_scheduler(args)

    asyncio.run(main())
