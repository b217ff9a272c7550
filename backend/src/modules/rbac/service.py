"""Role rules: unique names, permissions only from the registry, and delegation.

Delegation: a caller hands on, takes away or assigns only permissions it holds itself
(`Principal.missing`; a superuser holds every one):

- creating a role with permissions needs each of them;
- replacing a role's permissions needs each permission added or removed;
- deleting a role needs each permission it holds;
- assigning or unassigning a role needs each permission it holds (the route needs
  `role.assign`), and a superuser's roles are changed only by a superuser.

Every check runs before the first write, and each operation commits once: a refused request
writes nothing. The role row is read `FOR UPDATE` (Postgres; SQLite's writers queue anyway)
before a change is checked against its permissions, so two changes of one role are checked
one after the other, never against the same stale set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.database.models import utcnow
from src.infrastructure.database.statements import fetch_value
from src.modules.audit.context import SYSTEM, AuditContext
from src.modules.audit.kinds import AuditKind, TargetType
from src.modules.audit.service import Target, record
from src.modules.auth.dependencies import missing_permissions_message
from src.modules.auth.sessions import Principal
from src.modules.common.exceptions import (
    ConflictError,
    DuplicateValueError,
    ForbiddenError,
    InvalidValueError,
    ResourceNotFoundError,
)
from src.modules.common.schemas import PageParams, build_page
from src.modules.common.transactions import commit_or_conflict
from src.modules.rbac.crud import (
    ROLE_COLUMNS,
    ROLES_COUNT,
    ROLES_PAGE,
    crud_roles,
    user_roles_page,
)
from src.modules.rbac.models import Role, RolePermission, UserRole
from src.modules.rbac.permissions import ROLE_READ
from src.modules.rbac.registry import REGISTRY, unknown
from src.modules.rbac.schemas import RoleCreate, RoleUpdate
from src.modules.user.models import User

ROLE_EXISTS = "A role with this name already exists"
SUPERUSER_UNTOUCHABLE = "Only a superuser can change a superuser's roles"


def effective_permissions(principal: Principal) -> list[str]:
    """What `principal` may do, sorted: every registered permission for a superuser."""
    if principal.is_superuser:
        return list(REGISTRY)
    return sorted(principal.permissions)


def _role(row: Any) -> dict[str, Any]:
    role = dict(row._mapping)
    role.pop("total_count", None)
    role["permissions"] = sorted(set(role["permissions"].split(","))) if role["permissions"] else []
    return role


def _require_known(names: Sequence[str]) -> set[str]:
    missing = unknown(names)
    if missing:
        raise InvalidValueError(f"Unknown permissions: {', '.join(missing)}", field="permissions")
    return set(names)


def _require_held(actor: Principal, names: set[str]) -> None:
    missing = actor.missing(names)
    if missing:
        raise ForbiddenError(
            "You can only grant, remove or assign permissions you hold yourself. "
            + missing_permissions_message(missing)
        )


class RoleService:
    async def list(self, *, params: PageParams, db: AsyncSession) -> dict[str, Any]:
        rows = (
            await db.execute(ROLES_PAGE.offset(params.offset).limit(params.items_per_page))
        ).all()
        total = rows[0].total_count if rows else await fetch_value(db, ROLES_COUNT)
        return build_page([_role(row) for row in rows], total, params)

    async def get(self, *, role_id: int, db: AsyncSession, lock: bool = False) -> dict[str, Any]:
        if lock:  # the row lock first, then the read with its permissions
            await db.execute(select(Role.id).where(Role.id == role_id).with_for_update())
        row = (await db.execute(select(*ROLE_COLUMNS).where(Role.id == role_id))).first()
        if row is None:
            raise ResourceNotFoundError(f"Role {role_id} not found")
        return _role(row)

    async def get_by_name(self, *, name: str, db: AsyncSession) -> dict[str, Any]:
        row = (await db.execute(select(*ROLE_COLUMNS).where(Role.name == name))).first()
        if row is None:
            raise ResourceNotFoundError(f"Role {name!r} not found")
        return _role(row)

    async def create(
        self,
        *,
        payload: RoleCreate,
        actor: Principal,
        db: AsyncSession,
        audit: AuditContext = SYSTEM,
    ) -> dict[str, Any]:
        names = _require_known(payload.permissions)
        _require_held(actor, names)
        if await crud_roles.exists(db, name=payload.name):
            raise DuplicateValueError(ROLE_EXISTS)
        async with commit_or_conflict(db, ROLE_EXISTS):
            role_id = (
                await db.execute(
                    insert(Role)
                    .values(name=payload.name, description=payload.description)
                    .returning(Role.id)
                )
            ).scalar_one()
            await _add_permissions(db, role_id, names)
            record(
                db,
                AuditKind.ROLE_CREATED,
                audit,
                target=Target.of(TargetType.ROLE, role_id),
                data={"name": payload.name, "permissions": sorted(names)},
            )
        return await self.get(role_id=role_id, db=db)

    async def update(
        self, *, role_id: int, payload: RoleUpdate, db: AsyncSession, audit: AuditContext = SYSTEM
    ) -> dict[str, Any]:
        """Rename or describe a role (its permissions change only through `set_permissions`)."""
        role = await self.get(role_id=role_id, db=db)
        changes = {k: v for k, v in payload.model_dump(exclude_unset=True).items() if v is not None}
        renamed = "name" in changes and changes["name"] != role["name"]
        if renamed and await crud_roles.exists(db, name=changes["name"]):
            raise DuplicateValueError(ROLE_EXISTS)
        if not changes:
            return role
        async with commit_or_conflict(db, ROLE_EXISTS):
            await db.execute(update(Role).where(Role.id == role_id).values(**changes))
            record(
                db,
                AuditKind.ROLE_UPDATED,
                audit,
                target=Target.of(TargetType.ROLE, role_id),
                data={key: value for key, value in changes.items() if key != "updated_at"},
            )
        return await self.get(role_id=role_id, db=db)

    async def set_permissions(
        self,
        *,
        role_id: int,
        names: Sequence[str],
        actor: Principal,
        db: AsyncSession,
        audit: AuditContext = SYSTEM,
    ) -> dict[str, Any]:
        """Replace the role's permissions; the caller must hold every one added or removed."""
        wanted = _require_known(names)
        role = await self.get(role_id=role_id, db=db, lock=True)
        current = set(role["permissions"])
        _require_held(actor, wanted ^ current)
        removed, added = current - wanted, wanted - current
        if removed:
            await db.execute(
                delete(RolePermission).where(
                    RolePermission.role_id == role_id, RolePermission.permission.in_(removed)
                )
            )
        await _add_permissions(db, role_id, added)
        if removed or added:
            await db.execute(update(Role).where(Role.id == role_id).values(updated_at=utcnow()))
            record(
                db,
                AuditKind.ROLE_PERMISSIONS_CHANGED,
                audit,
                target=Target.of(TargetType.ROLE, role_id),
                data={"added": sorted(added), "removed": sorted(removed)},
            )
        await db.commit()
        return await self.get(role_id=role_id, db=db)

    async def delete(
        self, *, role_id: int, actor: Principal, db: AsyncSession, audit: AuditContext = SYSTEM
    ) -> None:
        """Delete a role (its assignments go with it); the caller must hold all its
        permissions, since every holder loses them."""
        role = await self.get(role_id=role_id, db=db, lock=True)
        _require_held(actor, set(role["permissions"]))
        await db.execute(delete(Role).where(Role.id == role_id))
        record(
            db,
            AuditKind.ROLE_DELETED,
            audit,
            target=Target.of(TargetType.ROLE, role_id),
            data={"name": role["name"], "permissions": role["permissions"]},
        )
        await db.commit()

    # --- users' roles ------------------------------------------------------------------------

    async def list_for_user(
        self, *, username: str, actor: Principal, params: PageParams, db: AsyncSession
    ) -> dict[str, Any]:
        """A user's roles: your own, or anyone's with `role.read`."""
        user = await _user(db, username)
        if user["id"] != actor.id and not actor.allows([ROLE_READ.name]):
            raise ForbiddenError(missing_permissions_message([ROLE_READ.name]))
        rows = (
            await db.execute(
                user_roles_page(user["id"]).offset(params.offset).limit(params.items_per_page)
            )
        ).all()
        if rows:
            total = rows[0].total_count
        else:
            total = await fetch_value(
                db, select(func.count()).where(UserRole.user_id == user["id"])
            )
        return build_page([_role(row) for row in rows], total, params)

    async def assign(
        self,
        *,
        username: str,
        role_id: int,
        actor: Principal,
        db: AsyncSession,
        audit: AuditContext = SYSTEM,
    ) -> None:
        """Give `role_id` to the user (idempotent)."""
        user = await _user(db, username)
        role = await self._check_assignment(user, role_id, actor, db)
        held = await fetch_value(
            db,
            select(func.count()).where(UserRole.user_id == user["id"], UserRole.role_id == role_id),
        )
        if held:
            return
        async with commit_or_conflict(
            db, "The user's roles changed at the same time: try again", ConflictError
        ):
            await db.execute(insert(UserRole).values(user_id=user["id"], role_id=role["id"]))
            record(
                db,
                AuditKind.ROLE_ASSIGNED,
                audit,
                target=Target.user(user["id"]),
                data={"role_id": role["id"], "role": role["name"]},
            )

    async def unassign(
        self,
        *,
        username: str,
        role_id: int,
        actor: Principal,
        db: AsyncSession,
        audit: AuditContext = SYSTEM,
    ) -> None:
        """Take `role_id` back from the user; 404 when the user does not hold it."""
        user = await _user(db, username)
        role = await self._check_assignment(user, role_id, actor, db)
        result = await db.execute(
            delete(UserRole).where(UserRole.user_id == user["id"], UserRole.role_id == role_id)
        )
        if not getattr(result, "rowcount", 0):
            await db.rollback()
            raise ResourceNotFoundError(f"User {username!r} does not hold role {role_id}")
        record(
            db,
            AuditKind.ROLE_UNASSIGNED,
            audit,
            target=Target.user(user["id"]),
            data={"role_id": role["id"], "role": role["name"]},
        )
        await db.commit()

    async def _check_assignment(
        self, user: dict[str, Any], role_id: int, actor: Principal, db: AsyncSession
    ) -> dict[str, Any]:
        role = await self.get(role_id=role_id, db=db, lock=True)
        if user["is_superuser"] and not actor.is_superuser:
            raise ForbiddenError(SUPERUSER_UNTOUCHABLE)
        _require_held(actor, set(role["permissions"]))
        return role


async def _user(db: AsyncSession, username: str) -> dict[str, Any]:
    row = (
        await db.execute(
            select(User.id, User.is_superuser).where(
                User.username == username.lower(), User.is_deleted.is_(False)
            )
        )
    ).first()
    if row is None:
        raise ResourceNotFoundError("User not found")
    return dict(row._mapping)


async def _add_permissions(db: AsyncSession, role_id: int, names: set[str]) -> None:
    if names:
        await db.execute(
            insert(RolePermission),
            [{"role_id": role_id, "permission": name} for name in sorted(names)],
        )
