"""Where the integration tests' database lives, and creating or dropping it.

`TEST_DATABASE_URL` picks the server. Any `sqlite+aiosqlite://` URL runs the suite on the
embedded profile, in a temporary file. When it is unset, the local Postgres
(`postgresql+asyncpg://postgres@127.0.0.1:5432/test_db`) is used if it answers; if not, the
suite falls back to SQLite and says so in the report header and summary (never silently). An
explicitly set URL that does not answer fails the integration tests with an explanation.
Every worker of every run gets its own database (`test_db_gw0_<run id>`, ...).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from sqlalchemy.engine import URL, make_url

DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test_db"


FALLBACK_URL = "sqlite+aiosqlite://"


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def configured_url() -> tuple[str, str | None]:
    """The URL to test against and, when it is a fallback, why."""
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit, None
    default = make_url(DEFAULT_TEST_DATABASE_URL)
    if _answers(default.host or "127.0.0.1", default.port or 5432):
        return DEFAULT_TEST_DATABASE_URL, None
    reason = (
        f"no Postgres answers at {default.host}:{default.port} and TEST_DATABASE_URL is unset: "
        "the integration tests run on the embedded SQLite profile instead. Set "
        "TEST_DATABASE_URL to require a server."
    )
    return FALLBACK_URL, reason


def database_url_for_tests() -> URL:
    url = make_url(configured_url()[0])
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if url.get_backend_name() == "sqlite":
        folder = Path(tempfile.gettempdir()) / f"backend-tests-{os.getpid()}"
        folder.mkdir(parents=True, exist_ok=True)
        return url.set(database=str(folder / f"test_{worker}.db"))
    # The run id keeps two concurrent runs (two terminals, two developers on one server) from
    # dropping each other's databases; xdist workers of one run share it.
    run = (os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid()))[:8]
    return url.set(database=f"{url.database or 'test_db'}_{worker}_{run}")


def is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


async def recreate_database(url: URL) -> None:
    """Start from an empty database (Postgres: DROP/CREATE; SQLite: delete the file)."""
    await drop_database(url)
    if not is_sqlite(url):
        await _run_on_server(url, f'CREATE DATABASE "{url.database}"')


async def drop_database(url: URL) -> None:
    if is_sqlite(url):
        _remove_sqlite_file(url)
        return
    await _run_on_server(url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


async def _run_on_server(url: URL, statement: str) -> None:
    """Run one statement on the server's maintenance database (`postgres`)."""
    import asyncpg

    connection = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database="postgres",
        timeout=5,
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def _remove_sqlite_file(url: URL) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{url.database}{suffix}").unlink(missing_ok=True)


def unreachable_message(url: URL, error: BaseException) -> str:
    shown = url.render_as_string(hide_password=True)
    return (
        f"The integration tests need the database at {shown}, which did not answer "
        f"({type(error).__name__}: {error}).\n"
        "Start Postgres (see docs/testing.md), point TEST_DATABASE_URL at one, or run on the "
        "embedded profile with TEST_DATABASE_URL=sqlite+aiosqlite:// . Unit tests alone: "
        "pytest -m unit"
    )
