"""What the rbac slice guards with permissions (see `src.modules.common.permissions`), and the
permission of the admin panel, `admin.access` (the panel lives in `src/interfaces/` and so
cannot declare its own: interfaces sit above the modules)."""

from __future__ import annotations

from typing import Final

from src.modules.common.permissions import Permission

ROLE_READ: Final = Permission("role.read", "List roles and see whom a role is given to")
ROLE_CREATE: Final = Permission("role.create", "Create roles (with permissions you hold)")
ROLE_UPDATE: Final = Permission(
    "role.update", "Rename roles and change their permissions (only permissions you hold)"
)
ROLE_DELETE: Final = Permission("role.delete", "Delete roles that hold only permissions you hold")
ROLE_ASSIGN: Final = Permission(
    "role.assign", "Give roles to users and take them back (roles whose permissions you hold)"
)
ADMIN_ACCESS: Final = Permission("admin.access", "Sign in to the admin panel")

PERMISSIONS: Final = (
    ROLE_READ,
    ROLE_CREATE,
    ROLE_UPDATE,
    ROLE_DELETE,
    ROLE_ASSIGN,
    ADMIN_ACCESS,
)
