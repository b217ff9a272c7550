"""Roles for tests: made and given straight in the database (the API is what is under test
elsewhere), and the rows read back to prove what a request did or did not write."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from src.modules.common.permissions import Permission
from src.modules.rbac.models import Role, RolePermission, UserRole

# The permissions the product promises (each slice declares its own; the registry has them all).
PROMISED_PERMISSIONS = (
    "user.read",
    "user.update",
    "tier.manage",
    "ratelimit.manage",
    "role.read",
    "role.create",
    "role.update",
    "role.delete",
    "role.assign",
    "apikey.admin",
    "audit.read",
    "admin.access",
)

_numbers = itertools.count(1)


def _names(permissions: tuple[Permission | str, ...]) -> list[str]:
    return sorted({str(p) for p in permissions})


async def make_role(db: AsyncSession, *permissions: Permission | str, name: str = "") -> int:
    """A role holding `permissions` (committed); its id."""
    role_id = (
        await db.execute(
            insert(Role).values(name=name or f"role-{next(_numbers)}").returning(Role.id)
        )
    ).scalar_one()
    for permission in _names(permissions):
        await db.execute(insert(RolePermission).values(role_id=role_id, permission=permission))
    await db.commit()
    return int(role_id)


async def give_role(db: AsyncSession, user_id: int, role_id: int) -> None:
    await db.execute(insert(UserRole).values(user_id=user_id, role_id=role_id))
    await db.commit()


async def grant(db: AsyncSession, user: dict[str, Any], *permissions: Permission | str) -> int:
    """Give `user` a new role holding `permissions`; the role's id."""
    role_id = await make_role(db, *permissions)
    await give_role(db, user["id"], role_id)
    return role_id


async def role_permissions(db: AsyncSession, role_id: int) -> list[str]:
    rows = await db.execute(
        select(RolePermission.permission)
        .where(RolePermission.role_id == role_id)
        .order_by(RolePermission.permission)
    )
    return list(rows.scalars())


async def roles_of(db: AsyncSession, user_id: int) -> list[int]:
    rows = await db.execute(
        select(UserRole.role_id).where(UserRole.user_id == user_id).order_by(UserRole.role_id)
    )
    return list(rows.scalars())


async def role_names(db: AsyncSession) -> list[str]:
    return list((await db.execute(select(Role.name).order_by(Role.name))).scalars())
