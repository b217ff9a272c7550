"""Who may use the admin panel: one rule, in one function."""

from __future__ import annotations

from src.modules.auth.sessions import Principal

ADMIN_PERMISSION = "admin.access"


def can_use_admin(principal: Principal) -> bool:
    """Superusers, or holders of the `admin.access` permission (roles)."""
    # permission: admin.access - with roles: `or ADMIN_PERMISSION in principal.permissions`
    return principal.is_superuser
