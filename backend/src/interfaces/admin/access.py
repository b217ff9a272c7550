"""Who may use the admin panel, and each view: one rule each, in one place.

The panel is for superusers and holders of `admin.access`. Each view also names the
permissions its writes need (`AdminView.permissions`); a view with none (users, sessions: a
password set there, or a session ended, can take over any account) is for superusers only, so
the panel never lets anyone do more than the API would.
"""

from __future__ import annotations

from collections.abc import Sequence

from src.modules.auth.sessions import Principal
from src.modules.rbac.permissions import ADMIN_ACCESS

ADMIN_PERMISSION = ADMIN_ACCESS.name


def can_use_admin(principal: Principal) -> bool:
    """Superusers, or holders of the `admin.access` permission (roles)."""
    return principal.allows([ADMIN_PERMISSION])


def can_use_view(principal: Principal, permissions: Sequence[str] | None) -> bool:
    """The panel, plus the view's own permissions; `None`: superusers only."""
    if permissions is None:
        return principal.is_superuser
    return can_use_admin(principal) and principal.allows(permissions)
