"""Fuzz the live API against its own OpenAPI schema with Schemathesis (run by `.ci/run`).

    uv run python scripts/api_contract.py [--database-url URL] [--max-examples N] [--seed N]
                                          [-- extra schemathesis arguments]

Starts `app serve` on a free port, in an empty temporary folder, on a fresh database (a SQLite
file there by default; a Postgres URL names a database this script creates and drops), with
the rate limits raised so that fuzzing reaches the handlers. Creates a superuser
(`app create-superuser`) and a user (the sign-up route), then runs Schemathesis three times:
anonymous, as the user and as the superuser (session cookie + CSRF header, signed in by
`schemathesis_hooks.py`), each with the coverage, fuzzing and stateful phases and every
default check. Exits non-zero on any failure (the server's log is printed then).

No operation is left out: when the fuzzer ends the run's session or deletes its account, the
hooks sign in again (`schemathesis_hooks.py`). Settings: `schemathesis.toml`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

BACKEND = Path(__file__).resolve().parents[1]
SCRIPTS = BACKEND / "scripts"
BIN = Path(sys.executable).parent
PASSWORD = "Contract-Fuzzing-Lantern-42"  # noqa: S105 - a throwaway account of the run
USER = {"name": "Fuzz User", "username": "fuzzuser", "email": "fuzzuser@example.com"}
ADMIN = {"name": "Fuzz Admin", "username": "fuzzadmin", "email": "fuzzadmin@example.com"}
GENEROUS = "1000000/minute"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(folder: Path, database_url: str) -> dict[str, str]:
    """The environment of the app under test: only what this run sets, on the local profile."""
    keep = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DATABASE_", "ENVIRONMENT", "PYTEST", "CACHE_", "RATE_LIMIT_", "SESSION_", "REDIS_")
        )
        and not key.startswith(("OAUTH_", "TASKIQ_", "EMAIL_", "ARGON2_", "LOG_", "CSRF_"))
    }
    return keep | {
        "ENVIRONMENT": "local",
        "DATABASE_URL": database_url,
        "RATE_LIMIT_DEFAULT": GENEROUS,
        "RATE_LIMIT_ANONYMOUS": GENEROUS,
        # Cheap hashes: sign-ups and logins are fuzzed by the hundred.
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST_KIB": "1024",
        "LOG_ACCESS": "false",
        "LOG_LEVEL": "WARNING",
        # OAuth routes exist only with a provider: configure one whose endpoints refuse
        # connections, so its routes are fuzzed without anything leaving the machine.
        "OAUTH_GITHUB_CLIENT_ID": "contract-client",
        "OAUTH_GITHUB_CLIENT_SECRET": "contract-secret",
        "OAUTH_GITHUB_AUTHORIZE_URL": "http://127.0.0.1:9/authorize",
        "OAUTH_GITHUB_TOKEN_URL": "http://127.0.0.1:9/token",
        "OAUTH_GITHUB_USER_URL": "http://127.0.0.1:9/user",
        "OAUTH_GITHUB_EMAILS_URL": "http://127.0.0.1:9/emails",
        "FRONTEND_URL": "http://127.0.0.1:9",
        # Sign-ins of the hooks carry an X-Forwarded-For of their own (schemathesis_hooks.py).
        "TRUSTED_PROXY_HOPS": "1",
        "HOME": str(folder),
    }


def app(*args: str, env: dict[str, str], folder: Path) -> None:
    subprocess.run([str(BIN / "app"), *args], cwd=folder, env=env, check=True)


class Server:
    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder, self.env = folder, env
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = folder / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [str(BIN / "app"), "serve", "--port", str(self.port)],
            cwd=self.folder,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"app serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        sys.exit("app serve did not answer /health within 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def schemathesis(base_url: str, env: dict[str, str], role: str, options: list[str]) -> int:
    """One Schemathesis run; `role` (user, superuser) signs every request in through the
    hooks (`schemathesis_hooks.py`), "" runs anonymously."""
    command = [
        str(BIN / "schemathesis"),
        f"--config-file={SCRIPTS / 'schemathesis.toml'}",
        "run",
        f"{base_url}/openapi.json",
        "--phases=coverage,fuzzing,stateful",
        *options,
    ]
    account = {"user": USER, "superuser": ADMIN}.get(role, {})
    run_env = env | {
        "PYTHONPATH": str(SCRIPTS),
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "CONTRACT_BASE_URL": base_url,
        "CONTRACT_ROLE": role,
        "CONTRACT_USERNAME": account.get("username", ""),
        "CONTRACT_PASSWORD": PASSWORD,
    }
    label = role or "anonymous"
    print(f"\n--- schemathesis: {label} ---", flush=True)
    started = time.monotonic()
    code = subprocess.run(command, cwd=BACKEND, env=run_env, check=False).returncode
    print(f"--- {label}: exit {code} in {time.monotonic() - started:.0f} s ---", flush=True)
    return code


def postgres_database(url: str) -> tuple[str, str]:
    """A fresh database on the server `url` names: (its URL, the admin URL to drop it with)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"contract_{uuid.uuid4().hex[:12]}"
    admin = parsed.set(drivername="postgresql", database="postgres")
    admin_url = admin.render_as_string(hide_password=False)
    subprocess.run(["psql", admin_url, "-qc", f'CREATE DATABASE "{name}"'], check=True)
    return parsed.set(database=name).render_as_string(hide_password=False), admin_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    parser.add_argument("--max-examples", type=int, default=15, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (reproduce)")
    # One worker: Python 3.11's `ast.parse` is not thread-safe (hypothesis calls it to describe
    # strategies; two workers failed with "AST constructor recursion depth mismatch").
    parser.add_argument("--workers", default="1")
    parser.add_argument("extra", nargs="*", help="more schemathesis arguments (after --)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="api-contract-"))
    drop: tuple[str, str] | None = None
    if args.database_url and args.database_url.startswith("postgresql"):
        database_url, admin_url = postgres_database(args.database_url)
        drop = (database_url.rsplit("/", 1)[1], admin_url)
    else:
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder}/app.db"
    env = server_env(folder, database_url)
    server = Server(folder, env)
    options = [
        f"--max-examples={args.max_examples}",
        f"--workers={args.workers}",
        "--max-redirects=0",  # the OAuth routes redirect off this machine
        "--request-timeout=20",
        "--generation-database=none",
        "--no-color",
        *([f"--seed={args.seed}"] if args.seed is not None else []),
        *args.extra,
    ]
    failures = 0
    try:
        app("migrate", "upgrade", env=env, folder=folder)
        app(
            "create-superuser",
            f"--username={ADMIN['username']}",
            f"--email={ADMIN['email']}",
            f"--name={ADMIN['name']}",
            f"--password={PASSWORD}",
            env=env,
            folder=folder,
        )
        server.start()
        httpx.post(
            f"{server.base_url}/api/v1/users", json=USER | {"password": PASSWORD}
        ).raise_for_status()
        with httpx.Client(base_url=server.base_url) as admin:  # the rate-limit rules' tier
            admin.post(
                "/api/v1/auth/login", json={"username": ADMIN["username"], "password": PASSWORD}
            ).raise_for_status()
            csrf = {"X-CSRF-Token": admin.cookies["csrf_token"]}
            admin.post("/api/v1/tiers", json={"name": "fuzz"}, headers=csrf).raise_for_status()
        for role in ("", "user", "superuser"):
            failures += schemathesis(server.base_url, env, role, options) != 0
    finally:
        server.stop()
        if failures and server.log.exists():
            print("\n--- server log (warnings and errors) ---")
            print(server.log.read_text()[-20_000:])
        if drop is not None:
            name, admin_url = drop
            subprocess.run(
                ["psql", admin_url, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                check=False,
            )
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nschemathesis: {failures} of 3 runs failed" if failures else "\nschemathesis: OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
