"""The scheduler `app scheduler` runs: it sends the tasks whose labels carry a schedule.

    @default_broker.task(schedule=[{"cron": "*/15 * * * *"}])      # every 15 minutes (UTC)
    async def purge_something(db: TaskDB) -> None: ...

    @default_broker.task(schedule=[{"interval": 30, "args": [7]}])  # every 30 seconds

Run exactly one scheduler per deployment (two would send every task twice); the workers run
the tasks it sends.
"""

from __future__ import annotations

from taskiq import TaskiqScheduler
from taskiq.schedule_sources import LabelScheduleSource

from src.infrastructure.taskiq.brokers import default_broker

scheduler = TaskiqScheduler(default_broker, sources=[LabelScheduleSource(default_broker)])
