"""Opaque random tokens and their keyed hashes.

A session token is 256 random bits; the database only ever holds HMAC-SHA256(SECRET_KEY, token),
so a leaked table cannot be replayed as cookies. CSRF tokens are bound to the session token the
same way (signed double-submit), so a cookie planted by a sibling subdomain is useless.
Short-lived values a browser carries for the server (an OAuth sign-in in progress) are sealed:
signed, bound to a purpose and expiring.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import secrets
import time

from src.infrastructure.config import settings

TOKEN_BYTES = 32


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def _mac(purpose: str, value: str) -> str:
    mac = _keyed(settings.SECRET_KEY.get_secret_value()).copy()
    mac.update(f"{purpose}:{value}".encode())
    return mac.hexdigest()


@functools.lru_cache(maxsize=4)
def _keyed(key: str) -> hmac.HMAC:
    """An HMAC-SHA256 already keyed with `key`: copying it skips the key schedule (two hash
    blocks), a third of a MAC's cost; one is taken on every request (the session cookie's
    hash, the CSRF token's signature)."""
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of a value from a client with an expected ASCII signature.
    Bytes, not str: `compare_digest` raises on non-ASCII text, which a cookie may carry."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def hash_token(token: str) -> str:
    """The stored form of a session or API token."""
    return _mac("session", token)


def hash_purpose_token(purpose: str, token: str) -> str:
    """The stored form of a link token: keyed and bound to its purpose, so a token issued for
    one purpose never matches a lookup for another."""
    return _mac(f"link:{purpose}", token)


def state_fingerprint(*parts: str) -> str:
    """A keyed digest of an account's state (say its email and password hash): a token that
    records it at issue is void once that state changes."""
    return _mac("state", "\x00".join(parts))


def new_csrf_token(session_token: str | None) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{_csrf_signature(nonce, session_token)}"


def csrf_token_matches(token: str, session_token: str | None) -> bool:
    """True when `token` was issued by this server for this session."""
    nonce, _, signature = token.partition(".")
    if not nonce or not signature:
        return False
    return _same(signature, _csrf_signature(nonce, session_token))


def _csrf_signature(nonce: str, session_token: str | None) -> str:
    return _mac("csrf", f"{nonce}:{session_token or ''}")


def new_device_token(user_id: int) -> str:
    """A device cookie value: proof that this browser signed in to `user_id` before
    (OWASP's "device cookie"). `<user id>.<nonce>.<signature>`; the nonce names the device."""
    nonce = secrets.token_urlsafe(12)
    return f"{user_id}.{nonce}.{_mac('device', f'{user_id}:{nonce}')}"


def read_device_token(value: str | None) -> tuple[int, str] | None:
    """(user id, device nonce) of a device cookie this server issued, else None."""
    if not value:
        return None
    user_id, _, rest = value.partition(".")
    nonce, _, signature = rest.partition(".")
    if not (user_id.isdigit() and nonce and signature) or len(user_id) > 19:
        return None
    if not _same(signature, _mac("device", f"{user_id}:{nonce}")):
        return None
    return int(user_id), nonce


def hash_recovery_code(user_id: int, code: str) -> str:
    """The stored form of an MFA recovery code: keyed and bound to its account, so a leaked
    table neither reveals a code nor lets a code of one account match another's."""
    return _mac("mfa-recovery", f"{user_id}:{code}")


def derived_secret(purpose: str, value: str) -> str:
    """A secret only this server can compute from `value` (43 URL-safe characters): say the
    PKCE verifier of an OAuth state, so the verifier never has to be stored or sent anywhere
    but to the provider."""
    key = settings.SECRET_KEY.get_secret_value().encode()
    digest = hmac.new(key, f"derive:{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def seal(purpose: str, payload: dict[str, str], *, ttl_seconds: int) -> str:
    """`payload` signed for `purpose`, valid for `ttl_seconds`: `<base64 JSON>.<signature>`.

    Signed, not encrypted: whoever holds it can read it, so it must carry nothing secret.
    """
    body = json.dumps({"exp": int(time.time()) + ttl_seconds, "data": payload}).encode()
    encoded = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
    return f"{encoded}.{_mac(f'seal:{purpose}', encoded)}"


def unseal(purpose: str, value: str | None) -> tuple[dict[str, str], int] | None:
    """(payload, expiry as a Unix time) of a value `seal` made for `purpose` that has not
    expired, else None."""
    if not value:
        return None
    encoded, _, signature = value.partition(".")
    if not encoded or not _same(signature, _mac(f"seal:{purpose}", encoded)):
        return None
    try:
        sealed = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        expires, payload = int(sealed["exp"]), sealed["data"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        return None
    if expires <= time.time() or not isinstance(payload, dict):
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in payload.items()):
        return None
    return payload, expires


def hash_api_key(key: str) -> str:
    """The stored form of an API key: keyed and bound to its purpose."""
    return _mac("apikey", key)


def api_key_matches(key: str, stored_hash: str) -> bool:
    """Constant-time check of a key a client sent against its stored hash."""
    return _same(hash_api_key(key), stored_hash)
