"""Password hashing never runs on the event loop: other requests are served meanwhile."""

import asyncio
import threading

import pytest

from src.infrastructure.auth import passwords
from tests.helpers.factories import create_user

GATE_SECONDS = 5


@pytest.mark.integration
async def test_a_cheap_request_finishes_while_a_login_is_being_hashed(
    client, db_session, monkeypatch
):
    user = await create_user(db_session)
    hasher = passwords._hasher()
    hashing_started = threading.Event()
    health_answered = threading.Event()
    answered_during_hash: list[bool] = []
    real_verify = hasher.verify_and_update

    def held_verify(*args, **kwargs):
        # Hold the hash "in progress" until /health has answered. Were this on the event
        # loop, the whole server would stall here and /health could not answer meanwhile.
        hashing_started.set()
        answered_during_hash.append(health_answered.wait(GATE_SECONDS))
        return real_verify(*args, **kwargs)

    monkeypatch.setattr(hasher, "verify_and_update", held_verify)
    login = asyncio.create_task(
        client.post(
            "/api/v1/auth/login", json={"username": user["username"], "password": user["password"]}
        )
    )
    assert await asyncio.to_thread(hashing_started.wait, GATE_SECONDS)

    health = await client.get("/health")
    health_answered.set()

    assert health.status_code == 200
    assert (await login).status_code == 200
    assert answered_during_hash == [True], "hashing blocked the event loop"


@pytest.mark.integration
async def test_sign_up_hashes_in_a_worker_thread(client, monkeypatch):
    threads: list[threading.Thread] = []
    hasher = passwords._hasher()
    real_hash = hasher.hash

    def recording_hash(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_hash(*args, **kwargs)

    monkeypatch.setattr(hasher, "hash", recording_hash)
    from tests.helpers.factories import build_user_create_payload

    response = await client.post("/api/v1/users/", json=build_user_create_payload())

    assert response.status_code == 201
    assert threads, "sign-up did not hash a password"
    assert all(thread is not threading.main_thread() for thread in threads)


@pytest.mark.integration
async def test_concurrent_hashes_are_bounded_by_their_own_pool(monkeypatch):
    """A login flood runs at most PASSWORD_HASH_THREADS hashes at once, in threads of its
    own (not asyncio's default executor), so the event loop keeps a core."""
    from src.infrastructure.config import settings

    monkeypatch.setattr(settings, "PASSWORD_HASH_THREADS", 2)
    passwords._executor.cache_clear()
    hasher = passwords._hasher()
    real_hash = hasher.hash
    lock = threading.Lock()
    running, peak, names = 0, 0, set()

    def slow_hash(*args, **kwargs):
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            names.add(threading.current_thread().name)
        try:
            threading.Event().wait(0.05)
            return real_hash(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(hasher, "hash", slow_hash)
    try:
        hashes = await asyncio.gather(*(passwords.hash_password(f"pw-{n}!") for n in range(8)))
    finally:
        passwords._executor().shutdown(wait=True)
        passwords._executor.cache_clear()
    assert len(set(hashes)) == 8
    assert peak == 2
    assert all(name.startswith("password-hash") for name in names)
