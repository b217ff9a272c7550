"""`/api/v1/permissions`, `/api/v1/roles` and `/api/v1/users/{username}/roles`.

Every route accepts a session or an API key (a key's unsafe methods need its `write` scope) and
acts with the caller's permissions; the delegation rules are the service's (see there).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from src.infrastructure.database.session import DBSession
from src.modules.audit.dependencies import Audit
from src.modules.auth.dependencies import CurrentUser
from src.modules.common.schemas import Page, Pagination, PathId, responses
from src.modules.rbac.dependencies import (
    RoleAssigner,
    RoleCreator,
    RoleDeleter,
    RoleReader,
    RoleUpdater,
)
from src.modules.rbac.registry import REGISTRY
from src.modules.rbac.schemas import (
    MyPermissions,
    PermissionRead,
    RoleCreate,
    RolePermissionsUpdate,
    RoleRead,
    RoleUpdate,
)
from src.modules.rbac.service import RoleService, effective_permissions

NOT_HELD = "You lack `{permission}` or one of the permissions involved (named in `detail`)"
permissions_router = APIRouter(prefix="/permissions", tags=["permissions"])
roles_router = APIRouter(prefix="/roles", tags=["roles"])
user_roles_router = APIRouter(prefix="/users/{username}/roles", tags=["roles"])


@permissions_router.get("", response_model=list[PermissionRead])
async def list_permissions(_: CurrentUser) -> list[dict[str, str]]:
    """Every permission a role may hold (the registry), by name."""
    return [{"name": p.name, "description": p.description} for p in REGISTRY.values()]


@permissions_router.get("/me", response_model=MyPermissions)
async def my_permissions(caller: CurrentUser) -> dict[str, Any]:
    """Your effective permissions: those of your roles (every one for a superuser). Through an
    API key, its owner's."""
    return {"is_superuser": caller.is_superuser, "permissions": effective_permissions(caller)}


@roles_router.get("", response_model=Page[RoleRead])
async def list_roles(_: RoleReader, pagination: Pagination, db: DBSession) -> dict[str, Any]:
    """All roles by id, with their permissions, paginated (`role.read`)."""
    return await RoleService().list(params=pagination, db=db)


@roles_router.post(
    "",
    response_model=RoleRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(
        403,
        409,
        e403=NOT_HELD.format(permission="role.create"),
        e409="A role has this name",
    ),
)
async def create_role(
    payload: RoleCreate, caller: RoleCreator, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Create a role (`role.create`), optionally with permissions, each of which you must hold
    (403 naming the others). 409 when the name exists; 422 naming unknown permissions."""
    return await RoleService().create(payload=payload, actor=caller, db=db, audit=audit)


@roles_router.get("/{role_id}", response_model=RoleRead)
async def read_role(role_id: PathId, _: RoleReader, db: DBSession) -> dict[str, Any]:
    """One role with its permissions (`role.read`)."""
    return await RoleService().get(role_id=role_id, db=db)


@roles_router.patch(
    "/{role_id}",
    response_model=RoleRead,
    responses=responses(409, e409="A role has this name"),
)
async def update_role(
    role_id: PathId, payload: RoleUpdate, _: RoleUpdater, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Rename a role or change its description (`role.update`). 409 when the name exists."""
    return await RoleService().update(role_id=role_id, payload=payload, db=db, audit=audit)


@roles_router.put(
    "/{role_id}/permissions",
    response_model=RoleRead,
    responses=responses(403, e403=NOT_HELD.format(permission="role.update")),
)
async def set_role_permissions(
    role_id: PathId,
    payload: RolePermissionsUpdate,
    caller: RoleUpdater,
    db: DBSession,
    audit: Audit,
) -> dict[str, Any]:
    """Replace the role's permissions with `permissions` (`role.update`). You must hold every
    permission added or removed (403 naming the others, nothing changed); 422 naming unknown
    ones. Every holder of the role has the new set from their next request."""
    return await RoleService().set_permissions(
        role_id=role_id, names=payload.permissions, actor=caller, db=db, audit=audit
    )


@roles_router.delete(
    "/{role_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(403, e403=NOT_HELD.format(permission="role.delete")),
)
async def delete_role(role_id: PathId, caller: RoleDeleter, db: DBSession, audit: Audit) -> None:
    """Delete a role and its assignments (`role.delete`, and every permission of the role)."""
    await RoleService().delete(role_id=role_id, actor=caller, db=db, audit=audit)


@user_roles_router.get(
    "",
    response_model=Page[RoleRead],
    responses=responses(403, e403="Someone else's roles, without `role.read`"),
)
async def list_user_roles(
    username: str, caller: CurrentUser, pagination: Pagination, db: DBSession
) -> dict[str, Any]:
    """A user's roles: your own, or anyone's with `role.read`."""
    return await RoleService().list_for_user(
        username=username, actor=caller, params=pagination, db=db
    )


@user_roles_router.put(
    "/{role_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(
        403,
        409,
        e403=NOT_HELD.format(permission="role.assign") + ", or the user is a superuser",
        e409="The user's roles changed at the same moment",
    ),
)
async def assign_role(
    username: str, role_id: PathId, caller: RoleAssigner, db: DBSession, audit: Audit
) -> None:
    """Give the role to the user (idempotent; `role.assign` and every permission of the role).
    Only a superuser changes a superuser's roles. Effective from the user's next request."""
    await RoleService().assign(username=username, role_id=role_id, actor=caller, db=db, audit=audit)


@user_roles_router.delete(
    "/{role_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=responses(
        403, e403=NOT_HELD.format(permission="role.assign") + ", or the user is a superuser"
    ),
)
async def unassign_role(
    username: str, role_id: PathId, caller: RoleAssigner, db: DBSession, audit: Audit
) -> None:
    """Take the role back (same rules as assigning). 404 when the user does not hold it."""
    await RoleService().unassign(
        username=username, role_id=role_id, actor=caller, db=db, audit=audit
    )
