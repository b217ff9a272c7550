"""What the auth slice guards with permissions (see `src.modules.common.permissions`)."""

from __future__ import annotations

from typing import Final

from src.modules.common.permissions import Permission

APIKEY_ADMIN: Final = Permission(
    "apikey.admin", "See and revoke other users' API keys (the admin panel)"
)

PERMISSIONS: Final = (APIKEY_ADMIN,)
