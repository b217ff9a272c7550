"""Password hashing with argon2id through pwdlib, always off the event loop.

argon2 costs tens of milliseconds of CPU by design; run on the loop it would stall every other
request, so each call goes to a worker thread (argon2-cffi releases the GIL while hashing).
Unknown users are checked against a dummy hash so a login costs the same either way.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache

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


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash("dummy password used to equalise login timing")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """Check `password`; return (valid, new_hash) where new_hash is set when parameters changed.

    With `password_hash=None` (no such user) the same work is done against a dummy hash and the
    answer is always False.
    """
    if password_hash is None:
        await asyncio.to_thread(_hasher().verify, password, _dummy_hash())
        return False, None
    return await asyncio.to_thread(_hasher().verify_and_update, password, password_hash)
