"""Imports every slice's models so `Base.metadata` is complete (the app, Alembic, tests), and
the infrastructure's one table (`task_outbox`, the task outbox)."""

from src.infrastructure.taskiq.outbox import TaskOutbox
from src.modules.audit.models import AuditEvent
from src.modules.auth.apikeys.models import ApiKey
from src.modules.auth.mfa.models import MfaCredential, MfaRecoveryCode
from src.modules.auth.models import AccountToken, UserSession
from src.modules.auth.oauth.models import OAuthAccount, OAuthUsedState
from src.modules.rate_limit.models import RateLimit
from src.modules.rbac.models import Role, RolePermission, UserRole
from src.modules.tier.models import Tier
from src.modules.user.models import User

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditEvent",
    "MfaCredential",
    "MfaRecoveryCode",
    "OAuthAccount",
    "OAuthUsedState",
    "RateLimit",
    "Role",
    "RolePermission",
    "TaskOutbox",
    "Tier",
    "User",
    "UserRole",
    "UserSession",
]
