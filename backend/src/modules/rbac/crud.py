"""Data access of the rbac slice: `crud_roles` (FastCRUD) for the `roles` rows, and the Core
statements that read a role with its permissions in one round trip."""

from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD
from sqlalchemy import func, select

from src.infrastructure.database.functions import comma_joined
from src.infrastructure.database.statements import prebuilt
from src.modules.rbac.models import Role, RolePermission, UserRole

crud_roles: FastCRUD[Role, Any, Any, Any, Any, Any] = FastCRUD(Role)

# A role's permissions, comma-separated (NULL for none), correlated to the enclosing `roles` row.
_ROLE_PERMISSIONS = (
    select(comma_joined(RolePermission.permission))
    .where(RolePermission.role_id == Role.id)
    .correlate(Role)
    .scalar_subquery()
    .label("permissions")
)

ROLE_COLUMNS = (Role.id, Role.name, Role.description, Role.created_at, _ROLE_PERMISSIONS)

ROLES_PAGE = select(*ROLE_COLUMNS, func.count().over().label("total_count")).order_by(Role.id)
ROLES_COUNT = prebuilt(select(func.count()).select_from(Role))


def user_roles_page(user_id: int) -> Any:
    """A page of `user_id`'s roles (the caller adds offset and limit)."""
    return (
        select(*ROLE_COLUMNS, func.count().over().label("total_count"))
        .join(UserRole, UserRole.role_id == Role.id)
        .where(UserRole.user_id == user_id)
        .order_by(Role.id)
    )
