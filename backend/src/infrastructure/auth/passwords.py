"""Password hashing with argon2id through pwdlib, always off the event loop.

argon2 costs tens of milliseconds of CPU by design; run on the loop it would stall every other
request, so each call goes to a worker thread (argon2-cffi releases the GIL while hashing).
Unknown users are checked against a dummy hash so a login costs the same either way.

The threads are a pool of their own, `PASSWORD_HASH_THREADS` (default: one less than the
cores, at least one). Not asyncio's default executor: that one has cores + 4 threads, so a
login flood ran six hashes at once on two cores and starved the event loop (a `/health` p99 of
63 ms instead of 2 ms). Hashes beyond the pool wait in its queue; the loop keeps a core.
On Linux the hashing threads also run at the lowest scheduling priority (nice +19, per
thread), so when the cores are busy the kernel runs the event loop first: a login may wait a
little longer, a request already being served does not.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TypeVar

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from src.infrastructure.config import Environment, settings


@lru_cache(maxsize=1)
def _hasher() -> PasswordHash:
    if settings.ENVIRONMENT is Environment.PYTEST:
        # Cheap parameters keep the suite fast; the algorithm and code path are the same.
        return PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
    return PasswordHash(
        (
            Argon2Hasher(
                time_cost=settings.ARGON2_TIME_COST,
                memory_cost=settings.ARGON2_MEMORY_COST_KIB,
                parallelism=settings.ARGON2_PARALLELISM,
            ),
        )
    )


T = TypeVar("T")


def hash_threads() -> int:
    """How many hashes run at once in this process."""
    configured = settings.PASSWORD_HASH_THREADS
    if configured > 0:
        return configured
    # The cores this process may run on (a CPU set or a container's pinning), not the host's.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) - 1)


HASH_THREAD_NICENESS = 19


def _lower_priority() -> None:
    """Runs in each hashing thread as it starts: nice +19 for this thread only (Linux)."""
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


@lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(
        max_workers=hash_threads(),
        thread_name_prefix="password-hash",
        initializer=_lower_priority,
    )


async def _off_loop(work: Callable[..., T], *args: str) -> T:
    # In a copy of the caller's context, as `asyncio.to_thread` does: logs keep the request id.
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(
        _executor(), functools.partial(context.run, work, *args)
    )


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("dummy password used to equalise login timing")


def _verify_against_dummy(password: str) -> None:
    # In the hashing thread: the dummy hash itself is computed (once) there, never on the loop.
    _hasher().verify(password, _dummy_hash())


async def hash_password(password: str) -> str:
    return await _off_loop(_hasher().hash, password)


async def unusable_password_hash() -> str:
    """The hash of a random secret nobody is ever told: no password signs in to the account
    (until a reset sets one), yet the hash is an ordinary one, so a login attempt against it
    costs the same work as any other and reveals nothing."""
    return await hash_password(secrets.token_urlsafe(32))


async def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check `password`; return (valid, new_hash) where new_hash is set when parameters changed.

    With `password_hash=None` (no such user) the same work is done against a dummy hash and the
    answer is always False.
    """
    if password_hash is None:
        await _off_loop(_verify_against_dummy, password)
        return False, None
    return await _off_loop(_hasher().verify_and_update, password, password_hash)
