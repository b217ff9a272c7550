"""Small secrets encrypted at rest (an MFA account's TOTP seed), with keys derived from
SECRET_KEY.

What must be read back (a TOTP seed is needed to check every code) cannot be hashed, so it is
encrypted: AES-256-GCM from the `cryptography` package. Each purpose has its own key,
HKDF-SHA256(SECRET_KEY, info=purpose), so SECRET_KEY itself never keys a cipher and a value of
one purpose never decrypts as another's. Each value gets a fresh random 96-bit nonce, and
`context` (the owner's id, say) is bound as associated data: a ciphertext copied to another
row does not decrypt. Stored as `v1.<base64url(nonce || ciphertext+tag)>`.

Changing SECRET_KEY makes every stored value unreadable (`decrypt` answers None), as it ends
every session: rotating it means resetting what was encrypted with it.
"""

from __future__ import annotations

import base64
import binascii
import os
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from src.infrastructure.config import settings

VERSION = "v1"
NONCE_BYTES = 12


@lru_cache(maxsize=8)
def _cipher(secret_key: str, purpose: str) -> AESGCM:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"encrypt:{purpose}".encode()
    ).derive(secret_key.encode())
    return AESGCM(key)


def encrypt(plaintext: str, *, purpose: str, context: str) -> str:
    """`plaintext` encrypted under the key of `purpose`, bound to `context`."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _cipher(settings.SECRET_KEY.get_secret_value(), purpose).encrypt(
        nonce, plaintext.encode(), context.encode()
    )
    return f"{VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt(stored: str, *, purpose: str, context: str) -> str | None:
    """The plaintext, or None when `stored` is malformed, was tampered with, belongs to another
    purpose or context, or was encrypted under another SECRET_KEY."""
    version, _, payload = stored.partition(".")
    if version != VERSION:
        return None
    try:
        raw = base64.urlsafe_b64decode(payload.encode())
        nonce, sealed = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        if len(nonce) != NONCE_BYTES:
            return None
        plaintext = _cipher(settings.SECRET_KEY.get_secret_value(), purpose).decrypt(
            nonce, sealed, context.encode()
        )
        return plaintext.decode()
    except (InvalidTag, binascii.Error, ValueError):
        return None
