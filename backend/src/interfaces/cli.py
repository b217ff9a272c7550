"""The `app` command: serve, worker, scheduler, migrate, create-superuser, seed, check-config.

Installed as a `[project.scripts]` entry, so `uv run app --help` works from `backend/`.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.config import Environment, settings
from src.infrastructure.security.validator import find_problems

BACKEND_DIR = Path(__file__).resolve().parents[2]
T = TypeVar("T")

cli = typer.Typer(help="Run and manage the backend.", no_args_is_help=True)
migrate_cli = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
cli.add_typer(migrate_cli, name="migrate")


def _alembic_config() -> object:
    from alembic.config import Config

    config = Config(str(BACKEND_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(BACKEND_DIR / "migrations"))
    return config


def _run_with_session(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` with a session on an engine of its own, created and disposed in this loop."""
    from src.infrastructure.database.session import build_engine

    async def main() -> T:
        engine = build_engine(settings.DATABASE_URL)
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(main())


@migrate_cli.command("upgrade")
def migrate_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from alembic import command

    command.upgrade(_alembic_config(), revision)  # type: ignore[arg-type]


@migrate_cli.command("downgrade")
def migrate_downgrade(revision: Annotated[str, typer.Argument()] = "-1") -> None:
    """Revert migrations down to REVISION (default: one step)."""
    from alembic import command

    command.downgrade(_alembic_config(), revision)  # type: ignore[arg-type]


@migrate_cli.command("revision")
def migrate_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration does")],
    autogenerate: Annotated[bool, typer.Option(help="Diff the models against the database")] = True,
) -> None:
    """Create a new migration file."""
    from alembic import command

    command.revision(_alembic_config(), message=message, autogenerate=autogenerate)  # type: ignore[arg-type]


@cli.command()
def seed() -> None:
    """Create the default tier if it does not exist."""
    from src.modules.tier.service import TierService

    async def work(db: AsyncSession) -> int:
        tier_id = await TierService().ensure_default(db=db)
        await db.commit()
        return tier_id

    _run_with_session(work)
    typer.echo(f"default tier {settings.DEFAULT_TIER_NAME!r} is ready")


@cli.command("create-superuser")
def create_superuser(
    username: Annotated[str | None, typer.Option(help="Default: ADMIN_USERNAME")] = None,
    email: Annotated[str | None, typer.Option(help="Default: ADMIN_EMAIL")] = None,
    password: Annotated[
        str | None, typer.Option(help="Default: ADMIN_PASSWORD, else a prompt")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Default: ADMIN_NAME")] = None,
) -> None:
    """Create a superuser, or make an existing user with that username a superuser.

    A new superuser's password must pass the password policy; a refused one exits with code 1
    and one line per refused field naming the rule (never the value)."""
    from pydantic import ValidationError

    from src.modules.common.exceptions import ResourceNotFoundError
    from src.modules.user.service import UserService

    username = username or settings.ADMIN_USERNAME
    email = email or settings.ADMIN_EMAIL
    if not username or not email:
        raise typer.BadParameter("give --username and --email (or ADMIN_USERNAME/ADMIN_EMAIL)")

    async def work(db: AsyncSession) -> str:
        service = UserService()
        try:
            user = await service.get_by_username(username=username, db=db)
        except ResourceNotFoundError:
            secret = password or settings.ADMIN_PASSWORD or getpass.getpass("Password: ")
            payload = {"name": name or settings.ADMIN_NAME, "username": username}
            payload |= {"email": email, "password": secret}
            await service.create(payload=payload, db=db, is_superuser=True, is_verified=True)
            return "created"
        if user["is_superuser"]:
            return "already a superuser"
        await service.set_superuser(user_id=user["id"], value=True, db=db)
        return "promoted to superuser"

    try:
        outcome = _run_with_session(work)
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_context=False, include_input=False):
            typer.echo(f"{username}: not created: {_describe(error)}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{username}: {outcome}")


def _describe(error: Mapping[str, Any]) -> str:
    """One validation error as "field: reason", without the input (it may be a password)."""
    field = ".".join(str(part) for part in error["loc"]) or "input"
    message = str(error["msg"])
    return message if message.startswith(f"{field}:") else f"{field}: {message}"


@cli.command("check-config")
def check_config() -> None:
    """Print the effective settings (secrets hidden) and fail on production problems."""
    for key, value in settings.model_dump().items():
        hidden = any(word in key for word in ("SECRET", "PASSWORD")) and value
        typer.echo(f"{key}={'***' if hidden else value}")
    problems = find_problems(settings)
    for problem in problems:
        typer.echo(f"PROBLEM: {problem}", err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo("configuration OK")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
) -> None:
    """Serve the API with uvicorn. In local/development, migrate and seed first."""
    import uvicorn

    if settings.ENVIRONMENT in (Environment.LOCAL, Environment.DEVELOPMENT):
        migrate_upgrade("head")
        seed()
    uvicorn.run(
        "src.interfaces.main:app",
        host=host,
        port=port,
        workers=None if reload else workers,
        reload=reload,
        proxy_headers=False,  # client IPs come from TRUSTED_PROXY_HOPS, not from uvicorn
        server_header=False,
        log_config=None,  # the app configures structured logging itself
        access_log=False,  # one access line per request comes from the app, with its route
    )


def _task_modules(extra: list[str] | None) -> list[str]:
    from src.infrastructure.taskiq.runner import find_task_modules

    return [*find_task_modules("src.modules"), *(extra or [])]


@cli.command()
def worker(
    modules: Annotated[
        list[str] | None,
        typer.Argument(help="Task modules to load besides every src/modules/*/tasks.py"),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes")] = 2,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Tasks each process runs at the same time "
            "[default: its database pool, DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW]"
        ),
    ] = None,
    prefetch: Annotated[int, typer.Option(help="Messages taken beyond --concurrency")] = 0,
    shutdown_timeout: Annotated[
        float, typer.Option(help="Seconds to let running tasks finish on SIGTERM")
    ] = 30.0,
) -> None:
    """Run background tasks from the broker TASKIQ_BROKER names (redis or rabbitmq)."""
    from src.infrastructure.taskiq.runner import run_worker

    if settings.TASKIQ_BROKER == "memory":
        typer.echo(
            "TASKIQ_BROKER=memory runs tasks inside the process that sends them (the API); "
            "there is nothing for a worker to do. Set TASKIQ_BROKER=redis or rabbitmq.",
            err=True,
        )
        raise typer.Exit(code=2)
    status = run_worker(
        _task_modules(modules),
        workers=workers,
        max_async_tasks=concurrency or settings.DATABASE_POOL_SIZE + settings.DATABASE_MAX_OVERFLOW,
        max_prefetch=prefetch,
        shutdown_timeout=shutdown_timeout,
    )
    raise typer.Exit(code=status)


@cli.command()
def scheduler(
    modules: Annotated[
        list[str] | None,
        typer.Argument(help="Task modules to load besides every src/modules/*/tasks.py"),
    ] = None,
    skip_first_run: Annotated[
        bool, typer.Option(help="Skip the cron tasks due in the current minute")
    ] = False,
) -> None:
    """Send the tasks that carry a `schedule` label when they are due (run exactly one)."""
    from src.infrastructure.taskiq.runner import run_scheduler

    if settings.TASKIQ_BROKER == "memory":
        typer.echo(
            "TASKIQ_BROKER=memory: scheduled tasks run inside this scheduler process.", err=True
        )
    run_scheduler(_task_modules(modules), skip_first_run=skip_first_run)


def main() -> None:
    cli()


if __name__ == "__main__":  # python -m src.interfaces.cli
    main()
