"""The rbac slice's callers: each an `Annotated` alias over `require_permissions`."""

from __future__ import annotations

from typing import Annotated

from src.modules.auth.dependencies import require_permissions
from src.modules.auth.sessions import Principal
from src.modules.rbac.permissions import (
    ROLE_ASSIGN,
    ROLE_CREATE,
    ROLE_DELETE,
    ROLE_READ,
    ROLE_UPDATE,
)

RoleReader = Annotated[Principal, require_permissions(ROLE_READ)]
RoleCreator = Annotated[Principal, require_permissions(ROLE_CREATE)]
RoleUpdater = Annotated[Principal, require_permissions(ROLE_UPDATE)]
RoleDeleter = Annotated[Principal, require_permissions(ROLE_DELETE)]
RoleAssigner = Annotated[Principal, require_permissions(ROLE_ASSIGN)]
