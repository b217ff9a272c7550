"""Background tasks (Taskiq): `from src.infrastructure.taskiq import default_broker`.

`default_broker` is defined in `src.infrastructure.taskiq.brokers` and re-exported here (one
object, one module name). Tasks live in their slice's `tasks.py`:

    from src.infrastructure.taskiq import default_broker
    from src.infrastructure.taskiq.dependencies import TaskDB

    @default_broker.task
    async def recount(tier_id: int, db: TaskDB) -> None: ...

    await recount.kiq(3)            # send; a worker (or, with the memory broker, this
                                    # process) runs it
"""

from src.infrastructure.taskiq.brokers import build_broker, default_broker

__all__ = ["build_broker", "default_broker"]
