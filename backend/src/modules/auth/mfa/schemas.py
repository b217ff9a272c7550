"""Request and response shapes of MFA. The secret and the recovery codes appear only in the
responses that create them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

# A TOTP code is 6 digits, a recovery code 10 characters (white space and hyphens are ignored);
# the upper bound only keeps junk out.
Code = Annotated[
    str,
    Field(min_length=6, max_length=32, description="A 6-digit TOTP code or a recovery code"),
]


class MfaStatus(BaseModel):
    enabled: bool
    recovery_codes_left: int


class MfaEnrollment(BaseModel):
    """Shown once: the secret for manual entry and the URI to render as a QR code."""

    secret: str
    otpauth_uri: str


class MfaCodeRequest(BaseModel):
    code: Code


class MfaEnrollRequest(BaseModel):
    password: str = Field(min_length=1, max_length=1024, description="Your current password")


class MfaDisableRequest(BaseModel):
    password: str = Field(min_length=1, max_length=1024)
    code: Code


class MfaVerifyRequest(BaseModel):
    code: Code
    remember_me: bool = Field(
        default=False,
        description="Keep the session cookie after the browser closes (as for login)",
    )


class RecoveryCodes(BaseModel):
    """Shown once: each code signs in once in place of a TOTP code. Only hashes are kept."""

    recovery_codes: list[str]
