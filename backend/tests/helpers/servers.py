"""Private servers for fault tests: started on a free port, killed and restarted by the test,
never the shared ones the rest of the suite uses.

- `private_redis()`: a `redis-server` storing nothing on disk.
- `private_postgres()`: a Postgres cluster of its own (`initdb` into a temporary folder, run
  with `pg_ctl` as the `postgres` OS user when the tests run as root), trust authentication on
  127.0.0.1 and a socket in the same folder; stopped, killed and removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, *, up: bool, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not {'open' if up else 'close'} within {timeout}s")


class PrivateRedis:
    """A `redis-server` of the test's own, on a free port, storing nothing on disk; or, with
    `persist_dir`, keeping every write in an append-only file there (fsync'd on each write),
    so a restart (even after SIGKILL) finds what it had accepted, as a production broker
    must."""

    def __init__(self, persist_dir: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.persist_dir = persist_dir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        persistence: tuple[str, ...] = ("--appendonly", "no")
        if self.persist_dir is not None:
            self.persist_dir.mkdir(parents=True, exist_ok=True)
            persistence = ("--appendonly", "yes", "--appendfsync", "always")
            persistence += ("--dir", str(self.persist_dir))
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", ""),
                *persistence,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, up=True)

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to the clients."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
        _wait_for_port(self.port, up=False)


@contextmanager
def private_redis(persist_dir: Path | None = None) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(persist_dir)
    server.start()
    try:
        yield server
    finally:
        server.kill()


POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin_dir() -> Path | None:
    """Where `initdb` and `pg_ctl` are: PG_BIN_DIR, the newest /usr/lib/postgresql/*/bin, PATH."""
    candidates = [Path(os.environ["PG_BIN_DIR"])] if os.environ.get("PG_BIN_DIR") else []
    candidates += POSTGRES_BIN_DIRS
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


class PrivatePostgres:
    """A Postgres cluster in a temporary folder, on a free port; `url` names its `app` database.

    Root cannot run Postgres: as root, every server command runs as the `postgres` OS user
    (`runuser`), and the folder belongs to that user.
    """

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="private-pg-"))
        self.data = self.folder / "data"
        self.socket_dir = self.folder
        self.log = self.folder / "server.log"
        self.database = "app"
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.folder, "postgres", "postgres")

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self._as_postgres, *command], capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}\n{log}"
            )
        return done

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def init(self) -> None:
        self._run(
            self._tool("initdb"),
            *("-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync"),
            *("-E", "UTF8", "--locale=C"),
        )
        # Fast to start and stop, nothing durable: a test server, not a database to keep.
        settings = ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        settings += ["listen_addresses = '127.0.0.1'", "max_connections = 50"]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    def start(self) -> None:
        self._run(
            self._tool("pg_ctl"),
            *("-D", str(self.data), "-l", str(self.log), "-w", "-t", "60"),
            *("-o", f"-p {self.port} -k {self.socket_dir}"),
            "start",
        )
        _wait_for_port(self.port, up=True)

    def stop(self, mode: str = "fast") -> None:
        """`pg_ctl stop -m MODE`: fast ends every session (clients see their connection
        terminated, SQLSTATE 57P01), then the port closes."""
        self._run(self._tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        _wait_for_port(self.port, up=False)

    def kill(self) -> None:
        """SIGKILL to the postmaster and its children, as a crash (the next start recovers)."""
        import psutil

        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(FileNotFoundError, ValueError, psutil.NoSuchProcess):
            postmaster = psutil.Process(int(pid_file.read_text().split()[0]))
            victims = [postmaster, *postmaster.children(recursive=True)]
            for victim in victims:
                with contextlib.suppress(psutil.NoSuchProcess):
                    victim.send_signal(signal.SIGKILL)
            psutil.wait_procs(victims, timeout=10)
        _wait_for_port(self.port, up=False)

    def create_database(self) -> None:
        self._run(
            self._tool("createdb"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database),
        )

    def running(self) -> bool:
        status = self._run(self._tool("pg_ctl"), "-D", str(self.data), "status", check=False)
        return status.returncode == 0

    def cleanup(self) -> None:
        if self.data.exists() and self.running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster with an empty `app` database; removed afterwards."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("Postgres server binaries (initdb, pg_ctl) not found; set PG_BIN_DIR")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start Postgres as postgres")
    server = PrivatePostgres(bin_dir)
    try:
        server.init()
        server.start()
        server.create_database()
        yield server
    finally:
        server.cleanup()


APP = Path(sys.executable).with_name("app")
# The suite's own configuration must not leak into a server a test starts.
_NOT_INHERITED = {"DATABASE_URL", "ENVIRONMENT", "PYTEST_CURRENT_TEST", "PROMETHEUS_MULTIPROC_DIR"}
_NOT_INHERITED_PREFIXES = ("CACHE_", "RATE_LIMIT_", "SESSION_", "REDIS_", "TASKIQ_", "METRICS_")


class AppServer:
    """`app serve` as a subprocess on a free port, its stderr (the app's log) in a file."""

    def __init__(self, folder: Path, env: dict[str, str], *, workers: int = 1) -> None:
        self.folder = folder
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.stdout_path = folder / "server.out"
        self.log_path = folder / "server.log"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in _NOT_INHERITED and not key.startswith(_NOT_INHERITED_PREFIXES)
        } | env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        import httpx

        command = [str(APP), "serve", "--port", str(self.port), "--workers", str(self.workers)]
        with self.stdout_path.open("ab") as out, self.log_path.open("ab") as err:
            self.process = subprocess.Popen(
                command, cwd=self.folder, env=self.env, stdout=out, stderr=err
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"app serve exited {self.process.returncode}: {self.log()[-3000:]}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        pytest.fail(f"app serve did not answer /health within {timeout}s: {self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stopping the container."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
