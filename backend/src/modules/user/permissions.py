"""What the user slice guards with permissions (see `src.modules.common.permissions`)."""

from __future__ import annotations

from typing import Final

from src.modules.common.permissions import Permission

USER_READ: Final = Permission("user.read", "List every user account (`GET /api/v1/users`)")
USER_UPDATE: Final = Permission(
    "user.update", "Move a user to another tier (`PATCH /api/v1/users/{username}/tier`)"
)

PERMISSIONS: Final = (USER_READ, USER_UPDATE)
