"""Secrets encrypted at rest: AES-GCM under a key derived from SECRET_KEY, per purpose, bound
to a context; anything tampered, misplaced or from another key decrypts to None."""

from __future__ import annotations

import base64

import pytest

from src.infrastructure.auth.encryption import decrypt, encrypt
from src.infrastructure.auth.tokens import hash_recovery_code
from src.infrastructure.config import settings

pytestmark = pytest.mark.unit

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_a_value_round_trips_and_never_appears_in_clear():
    stored = encrypt(SECRET, purpose="totp", context="user:1")

    assert decrypt(stored, purpose="totp", context="user:1") == SECRET
    assert SECRET not in stored
    assert SECRET.encode() not in base64.urlsafe_b64decode(stored.split(".", 1)[1])
    assert stored.startswith("v1.")
    assert len(stored) <= 255  # the column


def test_each_encryption_uses_a_fresh_nonce():
    assert encrypt(SECRET, purpose="totp", context="user:1") != encrypt(
        SECRET, purpose="totp", context="user:1"
    )


def test_another_context_or_purpose_does_not_decrypt():
    stored = encrypt(SECRET, purpose="totp", context="user:1")

    assert decrypt(stored, purpose="totp", context="user:2") is None
    assert decrypt(stored, purpose="other", context="user:1") is None


def test_another_secret_key_does_not_decrypt(monkeypatch):
    stored = encrypt(SECRET, purpose="totp", context="user:1")
    monkeypatch.setattr(settings, "SECRET_KEY", "another-secret-key-of-sufficient-length-123")

    assert decrypt(stored, purpose="totp", context="user:1") is None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s[:-2] + ("AA" if s[-2:] != "AA" else "BB"), id="tampered"),
        pytest.param(lambda s: "v2." + s[3:], id="unknown-version"),
        pytest.param(lambda s: s[:10], id="truncated"),
        pytest.param(lambda s: "v1.", id="empty"),
        pytest.param(lambda s: "v1.%%%not-base64%%%", id="not-base64"),
        pytest.param(lambda s: "", id="nothing"),
    ],
)
def test_a_damaged_value_decrypts_to_none(mangle):
    stored = encrypt(SECRET, purpose="totp", context="user:1")

    assert decrypt(mangle(stored), purpose="totp", context="user:1") is None


def test_recovery_code_hashes_are_keyed_and_bound_to_the_account(monkeypatch):
    first = hash_recovery_code(1, "abcde23456")

    assert first == hash_recovery_code(1, "abcde23456")
    assert "abcde23456" not in first
    assert len(first) == 64
    assert first != hash_recovery_code(2, "abcde23456")
    assert first != hash_recovery_code(1, "abcde23457")
    monkeypatch.setattr(settings, "SECRET_KEY", "another-secret-key-of-sufficient-length-123")
    assert first != hash_recovery_code(1, "abcde23456")
