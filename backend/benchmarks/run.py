"""Benchmark the authenticated read (`GET /api/v1/users/me`) against a bare Starlette + asyncpg
app doing the same query, in one run on one machine, and print the ratio.

    cd backend && uv run python benchmarks/run.py [--seconds 10] [--connections 32]

Needs the local Postgres and `wrk` (apt-get install wrk). Both servers run one uvicorn worker.
The product's target is a ratio of at least 1/3 (see docs/architecture.md).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

BACKEND = Path(__file__).resolve().parents[1]
DB = "bench_db"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DB}"
SECRET = "benchmark-secret-key-0123456789-abcdefghijklmnop"
ENV = {
    **os.environ,
    "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{DB}",
    "ENVIRONMENT": "development",
    "SECRET_KEY": SECRET,
    "BARE_DSN": DSN,
    "COOKIE_SECURE": "false",  # plain http on loopback
    # The limiter still runs on every request (its cost is part of the measurement), with a
    # limit one client cannot reach during the run.
    "RATE_LIMIT_DEFAULT": "100000000/minute",
}


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        args, cwd=BACKEND, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit(f"server on {port} did not start")


def wrk(url: str, cookie: str, seconds: int, connections: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", f"Cookie: session={cookie}", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"errors during the run:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install wrk")

    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {DB}"],
        check=True,
    )
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {DB}"], check=True
    )
    subprocess.run(
        [sys.executable, "-m", "src.interfaces.cli", "migrate", "upgrade"],
        cwd=BACKEND,
        env=ENV,
        check=True,
    )

    uvicorn = [sys.executable, "-m", "uvicorn", "--no-access-log", "--log-level", "warning"]
    product = start([*uvicorn, "src.interfaces.main:app", "--port", "8101"], 8101)
    bare = start([*uvicorn, "benchmarks.bare_app:app", "--port", "8102"], 8102)
    try:
        with httpx.Client(base_url="http://127.0.0.1:8101") as client:
            user = {
                "name": "Bench",
                "username": "bench",
                "email": "bench@example.com",
                "password": "BenchPass123!",
            }
            client.post("/api/v1/users", json=user).raise_for_status()
            client.post(
                "/api/v1/auth/login", json={"username": "bench", "password": user["password"]}
            ).raise_for_status()
            cookie = client.cookies["session"]
            assert client.get("/api/v1/users/me").status_code == 200
        assert httpx.get("http://127.0.0.1:8102/me", cookies={"session": cookie}).status_code == 200
        wrk("http://127.0.0.1:8101/api/v1/users/me", cookie, 2, options.connections)  # warm up
        wrk("http://127.0.0.1:8102/me", cookie, 2, options.connections)
        ours = wrk(
            "http://127.0.0.1:8101/api/v1/users/me", cookie, options.seconds, options.connections
        )
        theirs = wrk("http://127.0.0.1:8102/me", cookie, options.seconds, options.connections)
    finally:
        product.terminate()
        bare.terminate()
    print(f"product GET /api/v1/users/me: {ours:8.0f} req/s")
    print(f"bare Starlette + asyncpg:     {theirs:8.0f} req/s")
    print(f"ratio: {ours / theirs:.2f} (target >= 0.33)")


if __name__ == "__main__":
    main()
