"""The `app` command: serve, worker, scheduler, migrate, create-superuser, roles, seed,
check-config.

Installed as a `[project.scripts]` entry, so `uv run app --help` works from `backend/`.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.config import Environment, mask_url, settings
from src.infrastructure.security.validator import InsecureSettingsError, find_problems

BACKEND_DIR = Path(__file__).resolve().parents[2]
T = TypeVar("T")
P = ParamSpec("P")


def _secrets() -> list[str]:
    """Every secret value of the settings, plain, longest first (to scrub messages)."""
    values = [
        value.get_secret_value()
        for value in settings.__dict__.values()
        if isinstance(value, SecretStr) and value.get_secret_value()
    ]
    return sorted(values, key=len, reverse=True)


def scrub(message: str, *extra: str | None) -> str:
    """`message` with URL passwords and any secret (settings', or `extra`) replaced by ***."""
    message = mask_url(message)
    for secret in [*(value for value in extra if value), *_secrets()]:
        message = message.replace(secret, "***")
    return message


def cause(exc: BaseException) -> str:
    """One line saying what went wrong: no traceback, no SQL parameters, no secret."""
    from sqlalchemy.exc import DBAPIError

    from src.modules.common.exceptions import DomainError

    if isinstance(exc, InsecureSettingsError):
        return "refusing to start: " + "; ".join(exc.problems)
    if isinstance(exc, DomainError):
        text = str(exc.detail)
    elif isinstance(exc, DBAPIError) and exc.orig is not None:  # not the SQL nor its parameters
        text = f"database error: {type(exc.orig).__name__}: {exc.orig}"
    elif isinstance(exc, OSError) and not str(exc):
        text = f"{type(exc).__name__} (errno {exc.errno})"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return scrub(lines[0] if lines else type(exc).__name__)


def fail(message: str) -> typer.Exit:
    """Print `message` on one line to stderr; the caller raises the returned exit 1."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=1)


def one_line_errors(command: Callable[P, T]) -> Callable[P, T]:
    """A command that fails prints one line (the cause) and exits 1: never a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, SystemExit):
            raise
        except KeyboardInterrupt:
            raise fail("interrupted") from None
        except Exception as exc:
            raise fail(cause(exc)) from None

    return run


cli = typer.Typer(help="Run and manage the backend.", no_args_is_help=True)
migrate_cli = typer.Typer(help="Database migrations (Alembic).", no_args_is_help=True)
cli.add_typer(migrate_cli, name="migrate")
roles_cli = typer.Typer(
    help="Roles and permissions (the operator acts as a superuser).", no_args_is_help=True
)
cli.add_typer(roles_cli, name="roles")


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


def _run_migrations(direction: str, revision: str) -> list[str]:
    """Upgrade or downgrade to `revision`; one line per migration applied or reverted."""
    from alembic import command

    done: list[str] = []

    def record(*, step: Any, **_: Any) -> None:
        script = step.up_revision
        doc = " ".join((script.doc or "").split()).rstrip(".") if script is not None else ""
        what = f"{step.up_revision_id}" + (f" ({doc})" if doc else "")
        done.append(f"{'applied' if step.is_upgrade else 'reverted'} {what}")

    config: Any = _alembic_config()
    config.attributes["on_version_apply"] = record
    getattr(command, direction)(config, revision)
    return done


@migrate_cli.command("upgrade")
@one_line_errors
def migrate_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    done = _run_migrations("upgrade", revision)
    for line in done:
        typer.echo(line)
    typer.echo(f"database is at {revision}" + ("" if done else ": nothing to apply"))


@migrate_cli.command("downgrade")
@one_line_errors
def migrate_downgrade(revision: Annotated[str, typer.Argument()] = "-1") -> None:
    """Revert migrations down to REVISION (default: one step)."""
    done = _run_migrations("downgrade", revision)
    for line in done:
        typer.echo(line)
    if not done:
        typer.echo("nothing to revert")


@migrate_cli.command("revision")
@one_line_errors
def migrate_revision(
    message: Annotated[str, typer.Option("--message", "-m", help="What the migration does")],
    autogenerate: Annotated[bool, typer.Option(help="Diff the models against the database")] = True,
) -> None:
    """Create a new migration file."""
    from alembic import command

    command.revision(_alembic_config(), message=message, autogenerate=autogenerate)  # type: ignore[arg-type]


@cli.command()
@one_line_errors
def seed() -> None:
    """Create the default tier if it does not exist."""
    from src.modules.tier.service import TierService

    async def work(db: AsyncSession) -> int:
        tier_id = await TierService().ensure_default(db=db)
        await db.commit()
        return tier_id

    _run_with_session(work)
    typer.echo(f"default tier {settings.DEFAULT_TIER_NAME!r} is ready")


def _operator() -> Any:
    """Whoever runs the command: trusted like a superuser (shell access to the server is more
    than any role grants), so the delegation rules do not apply."""
    from datetime import UTC, datetime

    from src.modules.auth.sessions import Principal

    return Principal(
        id=0,
        username="cli",
        email="",
        name="app command",
        is_superuser=True,
        tier_id=None,
        is_verified=True,
        created_at=datetime.now(UTC),
    )


@roles_cli.command("permissions")
@one_line_errors
def roles_permissions() -> None:
    """List every permission a role may hold."""
    from src.modules.rbac.registry import REGISTRY

    for permission in REGISTRY.values():
        typer.echo(f"{permission.name}\t{permission.description}")


@roles_cli.command("list")
@one_line_errors
def roles_list() -> None:
    """List the roles with their permissions."""
    from src.modules.common.schemas import PageParams
    from src.modules.rbac.service import RoleService

    async def work(db: AsyncSession) -> list[dict[str, Any]]:
        roles: list[dict[str, Any]] = []
        page = 1
        while True:
            found = await RoleService().list(
                params=PageParams(page=page, items_per_page=100), db=db
            )
            roles += found["data"]
            if not found["has_more"]:
                return roles
            page += 1

    for role in _run_with_session(work):
        typer.echo(f"{role['id']}\t{role['name']}\t{','.join(role['permissions'])}")


@roles_cli.command("create")
@one_line_errors
def roles_create(
    name: Annotated[str, typer.Argument(help="The role's name")],
    permission: Annotated[
        list[str] | None, typer.Option("--permission", "-p", help="A permission (repeat)")
    ] = None,
    description: Annotated[str, typer.Option(help="What the role is for")] = "",
) -> None:
    """Create a role holding the given permissions."""
    from src.modules.rbac.schemas import RoleCreate
    from src.modules.rbac.service import RoleService

    payload = RoleCreate(name=name, description=description, permissions=permission or [])

    async def work(db: AsyncSession) -> dict[str, Any]:
        return await RoleService().create(payload=payload, actor=_operator(), db=db)

    role = _run_with_session(work)
    typer.echo(f"role {role['name']!r} created (id {role['id']}): {role['permissions']}")


@roles_cli.command("assign")
@one_line_errors
def roles_assign(
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Argument(help="The role's name")],
    remove: Annotated[bool, typer.Option("--remove", help="Take the role back")] = False,
) -> None:
    """Give a role to a user (or take it back with --remove)."""
    from src.modules.rbac.service import RoleService

    async def work(db: AsyncSession) -> None:
        service = RoleService()
        role_id = (await service.get_by_name(name=role, db=db))["id"]
        change = service.unassign if remove else service.assign
        await change(username=username, role_id=role_id, actor=_operator(), db=db)

    _run_with_session(work)
    typer.echo(f"{username}: role {role!r} {'removed' if remove else 'given'}")


@cli.command("create-superuser")
@one_line_errors
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

    from src.modules.common.exceptions import DomainError, ResourceNotFoundError
    from src.modules.user.service import UserService

    username = username or settings.ADMIN_USERNAME
    email = email or settings.ADMIN_EMAIL
    if not username or not email:
        raise typer.BadParameter("give --username and --email (or ADMIN_USERNAME/ADMIN_EMAIL)")

    admin_password = settings.ADMIN_PASSWORD.get_secret_value() if settings.ADMIN_PASSWORD else None
    chosen: list[str] = []

    async def work(db: AsyncSession) -> str:
        service = UserService()
        try:
            user = await service.get_by_username(username=username, db=db)
        except ResourceNotFoundError:
            secret = password or admin_password or getpass.getpass("Password: ")
            chosen.append(secret)
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
            reason = scrub(_describe(error), *chosen)
            typer.echo(f"{username}: not created: {reason}", err=True)
        raise typer.Exit(code=1) from None
    except DomainError as exc:  # the email (or, in a race, the username) is taken
        typer.echo(f"{username}: not created: {scrub(str(exc.detail), *chosen)}", err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{username}: {outcome}")


def _describe(error: Mapping[str, Any]) -> str:
    """One validation error as "field: reason", without the input (it may be a password)."""
    field = ".".join(str(part) for part in error["loc"]) or "input"
    message = str(error["msg"])
    return message if message.startswith(f"{field}:") else f"{field}: {message}"


def _shown(key: str, value: object) -> object:
    """A setting as check-config prints it: secrets as ***, URLs without their password."""
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else ""
    if isinstance(value, str) and key.endswith("_URL"):
        return mask_url(value)
    return value


@cli.command("check-config")
@one_line_errors
def check_config() -> None:
    """Print the effective settings (secrets hidden) and fail on production problems."""
    for key, value in settings.model_dump().items():
        typer.echo(f"{key}={_shown(key, value)}")
    from src.infrastructure.redis_client import persistence_warning

    warning = asyncio.run(persistence_warning()) if settings.SESSION_BACKEND == "redis" else None
    if warning:
        typer.echo(f"WARNING: {warning}", err=True)
    problems = find_problems(settings)
    for problem in problems:
        typer.echo(f"PROBLEM: {problem}", err=True)
    if problems:
        raise typer.Exit(code=1)
    typer.echo("configuration OK")


def _prepare_metrics_dir(workers: int) -> Path | None:
    """With several workers, Prometheus' multiprocess mode: PROMETHEUS_MULTIPROC_DIR (a new
    temporary folder unless set; emptied either way, so counters of a previous run do not
    come back). Returns the folder to delete at exit, if we made it."""
    import tempfile

    if workers <= 1 or not settings.METRICS_ENABLED:
        return None
    # Set before the workers import prometheus-client: it picks its storage at import.
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        return None
    folder = Path(tempfile.mkdtemp(prefix="app-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # inherited by the workers
    return folder


WORKER_HEALTHCHECK_SECONDS = 60


def _exit_after_shutdown(number: int, _: object) -> None:
    raise SystemExit(0 if number == signal.SIGTERM else 128 + number)


@cli.command()
@one_line_errors
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development)")] = False,
) -> None:
    """Serve the API with uvicorn. In local/development, migrate and seed first.

    With --workers N > 1, /metrics adds up the workers' series (Prometheus multiprocess mode
    in PROMETHEUS_MULTIPROC_DIR, a temporary folder unless set)."""
    import shutil

    import uvicorn

    problems = find_problems(settings)
    if settings.SINGLE_PROCESS and workers > 1:
        problems.append(f"SINGLE_PROCESS is true but --workers is {workers}")
    if problems:
        raise fail("refusing to start: " + "; ".join(problems))
    if settings.ENVIRONMENT in (Environment.LOCAL, Environment.DEVELOPMENT):
        migrate_upgrade("head")
        seed()
    metrics_dir = None if reload else _prepare_metrics_dir(workers)
    if workers > 1 and not reload and settings.METRICS_ENABLED:
        typer.echo(f"metrics of the workers add up in {os.environ['PROMETHEUS_MULTIPROC_DIR']}")
    shown_host = f"[{host}]" if ":" in host else host
    processes = "reloading on changes" if reload else f"{workers} worker(s)"
    typer.echo(f"serving http://{shown_host}:{port} ({processes}); Ctrl+C or SIGTERM stops")
    # uvicorn shuts down gracefully (requests in flight finish), then raises the signal again
    # for the handler found before it: exit 0 for SIGTERM (a normal stop), 130 for Ctrl+C.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_after_shutdown)
    try:
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
            # uvicorn kills a worker that does not answer its health ping within this many
            # seconds; its 5 s default killed workers still importing on a busy machine.
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _task_modules(extra: list[str] | None) -> list[str]:
    from src.infrastructure.taskiq.runner import find_task_modules

    return [*find_task_modules("src.modules"), *(extra or [])]


@cli.command()
@one_line_errors
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
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve the task metrics (tasks_total) of every process on this port"),
    ] = None,
) -> None:
    """Run background tasks from the broker TASKIQ_BROKER names (redis or rabbitmq)."""
    import shutil

    from src.infrastructure.taskiq.runner import run_worker

    if settings.TASKIQ_BROKER == "memory":
        typer.echo(
            "TASKIQ_BROKER=memory runs tasks inside the process that sends them (the API); "
            "there is nothing for a worker to do. Set TASKIQ_BROKER=redis or rabbitmq.",
            err=True,
        )
        raise typer.Exit(code=2)
    metrics_dir = None
    if metrics_port:
        # The worker processes count into files, this process serves their sum.
        metrics_dir = _prepare_metrics_dir(2)
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(metrics_port, registry=registry)
        typer.echo(f"task metrics on http://0.0.0.0:{metrics_port}/metrics")
    try:
        status = run_worker(
            _task_modules(modules),
            workers=workers,
            max_async_tasks=concurrency
            or settings.DATABASE_POOL_SIZE + settings.DATABASE_MAX_OVERFLOW,
            max_prefetch=prefetch,
            shutdown_timeout=shutdown_timeout,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    raise typer.Exit(code=status)


@cli.command()
@one_line_errors
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
    try:
        cli()
    except Exception as exc:  # anything the commands did not catch (an import-time error)
        sys.stderr.write(f"error: {cause(exc)}\n")
        sys.exit(1)


if __name__ == "__main__":  # python -m src.interfaces.cli
    main()
