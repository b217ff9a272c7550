"""MFA code helpers: recovery code generation and normalisation, TOTP steps and the window."""

from __future__ import annotations

from datetime import UTC, datetime

import pyotp
import pytest

from src.modules.auth.mfa import service
from src.modules.auth.mfa.service import (
    RECOVERY_ALPHABET,
    decrypt_secret,
    encrypt_secret,
    is_totp_code,
    new_recovery_codes,
    normalise_code,
    totp_step,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 12, 0, 10, tzinfo=UTC)


def test_ten_distinct_recovery_codes_of_fifty_bits():
    codes = new_recovery_codes()

    assert len(codes) == 10
    assert len(set(codes)) == 10
    for code in codes:
        assert len(code) == 11
        assert code[5] == "-"
        assert set(code.replace("-", "")) <= set(RECOVERY_ALPHABET)
        assert not is_totp_code(normalise_code(code))
    assert len(RECOVERY_ALPHABET) == 32  # 10 symbols: 50 bits
    assert not set(codes) & set(new_recovery_codes())


@pytest.mark.parametrize(
    ("typed", "normalised"),
    [
        ("abcde-fghij", "abcdefghij"),
        (" ABCDE FGHIJ ", "abcdefghij"),
        ("123 456", "123456"),
        ("123-456\n", "123456"),
    ],
)
def test_codes_are_normalised(typed, normalised):
    assert normalise_code(typed) == normalised


@pytest.mark.parametrize(
    ("code", "totp"),
    [("123456", True), ("12345", False), ("1234567", False), ("12345a", False), ("١٢٣٤٥٦", False)],
)
def test_only_six_ascii_digits_are_a_totp_code(code, totp):
    assert is_totp_code(code) is totp


def test_a_code_is_accepted_one_step_either_side_and_gives_its_step(monkeypatch):
    monkeypatch.setattr(service, "utcnow", lambda: NOW)
    secret = pyotp.random_base32()
    totp = pyotp.TOTP(secret)
    step = totp.timecode(NOW)

    for offset in (-1, 0, 1):
        assert totp_step(secret, totp.at(NOW, counter_offset=offset)) == step + offset
    for offset in (-3, -2, 2, 3):
        code = totp.at(NOW, counter_offset=offset)
        if code not in {totp.at(NOW, counter_offset=o) for o in (-1, 0, 1)}:
            assert totp_step(secret, code) is None
    assert totp_step(secret, "abcdef") is None


def test_the_secret_is_encrypted_per_account():
    stored = encrypt_secret(7, "JBSWY3DPEHPK3PXP")

    assert "JBSWY3DPEHPK3PXP" not in stored
    assert decrypt_secret(7, stored) == "JBSWY3DPEHPK3PXP"
    assert decrypt_secret(8, stored) is None
