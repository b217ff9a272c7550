"""The typed vocabulary of the audit log: event kinds, targets, outcomes, failure reasons.

Stored as plain strings (no database enum), so a new kind is one line here and no migration:
add a member to `AuditKind` (and a row to docs/audit.md). Kinds are `<area>.<event>`, so a
filter by area stays readable (`auth.*`, `mfa.*`, ...).
"""

from __future__ import annotations

from enum import StrEnum


class AuditKind(StrEnum):
    # sign-in and sessions
    LOGIN_SUCCEEDED = "auth.login.succeeded"
    LOGIN_FAILED = "auth.login.failed"
    LOGIN_MFA_REQUIRED = "auth.login.mfa_required"
    LOGOUT = "auth.logout"
    LOGOUT_ALL = "auth.logout_all"
    SESSION_REVOKED = "auth.session_revoked"
    OAUTH_LINKED = "auth.oauth_linked"  # an identity linked to a new or existing account
    # credentials and the account's address
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 - an event kind
    PASSWORD_RESET = "password.reset"  # noqa: S105 - an event kind
    EMAIL_CHANGE_REQUESTED = "email.change_requested"
    EMAIL_CHANGED = "email.changed"
    EMAIL_VERIFIED = "email.verified"
    # MFA
    MFA_ENABLED = "mfa.enabled"
    MFA_DISABLED = "mfa.disabled"
    MFA_RECOVERY_CODE_USED = "mfa.recovery_code_used"
    MFA_RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
    # API keys
    API_KEY_CREATED = "api_key.created"
    API_KEY_UPDATED = "api_key.updated"
    API_KEY_REVOKED = "api_key.revoked"
    # administration
    TIER_CREATED = "tier.created"
    TIER_UPDATED = "tier.updated"
    TIER_DELETED = "tier.deleted"
    USER_TIER_CHANGED = "user.tier_changed"
    RATE_LIMIT_CREATED = "rate_limit.created"
    RATE_LIMIT_UPDATED = "rate_limit.updated"
    RATE_LIMIT_DELETED = "rate_limit.deleted"
    USER_UPDATED = "user.updated"  # an admin changed profile fields (`fields` names them)
    USER_SESSIONS_ENDED = "user.sessions_ended"  # an admin signed the user out everywhere
    USER_DELETED = "user.deleted"
    USER_SUPERUSER_GRANTED = "user.superuser_granted"
    USER_SUPERUSER_REVOKED = "user.superuser_revoked"
    # roles and permissions
    ROLE_CREATED = "role.created"
    ROLE_UPDATED = "role.updated"
    ROLE_PERMISSIONS_CHANGED = "role.permissions_changed"
    ROLE_DELETED = "role.deleted"
    ROLE_ASSIGNED = "role.assigned"
    ROLE_UNASSIGNED = "role.unassigned"


class TargetType(StrEnum):
    """What an event acted on (`target_type`; `target_id` is that object's id)."""

    USER = "user"
    SESSION = "session"
    API_KEY = "api_key"
    TIER = "tier"
    RATE_LIMIT = "rate_limit"
    ROLE = "role"


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    PENDING = "pending"  # a first factor passed, the second is awaited


class LoginFailure(StrEnum):
    """Why a sign-in failed (`reason` of `auth.login.failed`)."""

    BAD_PASSWORD = "bad_password"  # noqa: S105 - a reason, not a password
    UNKNOWN_ACCOUNT = "unknown_account"
    INACTIVE = "inactive"  # the account was deleted
    THROTTLED = "throttled"
    MFA_FAILED = "mfa_failed"  # a wrong TOTP or recovery code at the second step
    MFA_EXPIRED = "mfa_expired"  # no pending sign-in, or it expired or was used
