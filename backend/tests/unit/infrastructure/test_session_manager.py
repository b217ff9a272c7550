"""Session tokens, CSRF tokens, passwords and client IPs: the pieces sessions are built from."""

import hashlib
import hmac
import importlib

import pytest
from starlette.requests import Request

from src.infrastructure.auth import passwords, tokens
from src.infrastructure.auth.client_ip import client_ip
from src.infrastructure.config import settings


@pytest.mark.unit
def test_session_tokens_are_256_bit_random_and_stored_only_as_keyed_hashes(monkeypatch):
    first, second = tokens.new_token(), tokens.new_token()
    assert first != second
    assert len(first) >= 43  # 32 bytes, url-safe base64
    stored = tokens.hash_token(first)
    assert first not in stored
    assert len(stored) == 64
    assert tokens.hash_token(first) == stored
    monkeypatch.setattr(settings, "SECRET_KEY", "another-secret-key-of-sufficient-length")
    assert tokens.hash_token(first) != stored  # keyed: a leaked table is useless without it


@pytest.mark.unit
def test_stored_hashes_are_hmac_sha256_under_the_current_secret_key(monkeypatch):
    """Keyed HMACs are reused across calls: a rotated key (and a key rotated back) still
    gives exactly HMAC-SHA256 under the key in force."""
    keys = ["first-secret-key-of-sufficient-length-0123", "second-secret-key-of-sufficient-len-45"]
    for key in keys + keys:
        monkeypatch.setattr(settings, "SECRET_KEY", key)
        expected = hmac.new(key.encode(), b"session:some-token", hashlib.sha256).hexdigest()
        assert tokens.hash_token("some-token") == expected


@pytest.mark.unit
def test_csrf_tokens_are_bound_to_their_session():
    token = tokens.new_csrf_token("session-a")
    assert tokens.csrf_token_matches(token, "session-a")
    assert not tokens.csrf_token_matches(token, "session-b")
    assert not tokens.csrf_token_matches(token, None)
    anonymous = tokens.new_csrf_token(None)
    assert tokens.csrf_token_matches(anonymous, None)
    nonce, _, _ = token.partition(".")
    assert not tokens.csrf_token_matches(f"{nonce}.forged", "session-a")
    assert not tokens.csrf_token_matches("no-signature", "session-a")


@pytest.mark.unit
async def test_password_hashes_are_argon2id_and_verify():
    hashed = await passwords.hash_password("Correct horse 1")
    assert hashed.startswith("$argon2id$")
    assert await passwords.verify_password("Correct horse 1", hashed) == (True, None)
    valid, _ = await passwords.verify_password("wrong", hashed)
    assert valid is False


@pytest.mark.unit
async def test_unknown_users_are_checked_against_a_dummy_hash(mocker):
    spy = mocker.spy(passwords._hasher(), "verify")
    assert await passwords.verify_password("anything", None) == (False, None)
    spy.assert_called_once()  # the same argon2 work as for a real user


@pytest.mark.unit
async def test_outdated_hash_parameters_are_upgraded_on_verify():
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    old = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=512, parallelism=1),))
    valid, new_hash = await passwords.verify_password("Pass1234!", old.hash("Pass1234!"))
    assert valid is True
    assert new_hash is not None
    assert new_hash.startswith("$argon2id$")


def _request(peer: str, forwarded: list[str]) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.unit
@pytest.mark.parametrize(
    ("hops", "forwarded", "expected"),
    [
        (0, ["6.6.6.6"], "10.0.0.1"),  # no trusted proxy: the header is ignored
        (1, ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),  # the proxy appended the real client
        (1, ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # repeated headers count as one list
        (2, ["6.6.6.6, 1.2.3.4, 10.0.0.9"], "1.2.3.4"),
        (1, [], "10.0.0.1"),
        (1, ["1.2.3.4, not-an-ip"], "10.0.0.1"),  # garbage is never taken for an address
        (2, ["6.6.6.6"], "10.0.0.1"),  # fewer entries than hops: a proxy was skipped
    ],
)
def test_client_ip_trusts_exactly_the_configured_hops(monkeypatch, hops, forwarded, expected):
    monkeypatch.setattr(settings, "TRUSTED_PROXY_HOPS", hops)
    assert client_ip(_request("10.0.0.1", forwarded)) == expected


@pytest.mark.unit
def test_the_bare_infrastructure_name_is_the_same_package_not_a_copy():
    # pytest puts src/ on sys.path; `infrastructure` (the Testing page's spelling) must be an
    # alias of `src.infrastructure`, never a second copy of its modules.
    import src.infrastructure
    import src.infrastructure.taskiq.brokers

    assert importlib.import_module("infrastructure") is src.infrastructure
    bare = importlib.import_module("infrastructure.taskiq.brokers")
    assert bare is src.infrastructure.taskiq.brokers
