"""`/api/v1/users`: sign-up, own profile, public profiles, administration (the user list needs
`user.read`, moving a user to another tier `user.update`; superusers hold every permission)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from src.infrastructure.cache import cache
from src.infrastructure.database.session import DBSession
from src.modules.audit.dependencies import Audit
from src.modules.auth.dependencies import (
    CurrentSession,
    CurrentUser,
    current_verified_user,
    require_permissions,
)
from src.modules.auth.sessions import Principal
from src.modules.common.schemas import Page, Pagination, responses
from src.modules.user.permissions import USER_READ, USER_UPDATE
from src.modules.user.schemas import UserCreate, UserPublic, UserRead, UserTierUpdate, UserUpdate
from src.modules.user.service import UserService, profile_cache_key

router = APIRouter(prefix="/users", tags=["users"])
UserReader = Annotated[Principal, require_permissions(USER_READ)]
UserUpdater = Annotated[Principal, require_permissions(USER_UPDATE)]


@router.post(
    "",
    response_model=UserRead,
    status_code=status.HTTP_201_CREATED,
    responses=responses(409, e409="The email or the username is taken"),
)
async def sign_up(payload: UserCreate, db: DBSession) -> dict[str, Any]:
    """Create an account on the default tier. 409 when the email or username is taken.
    The welcome email goes out in the background: its task is committed with the user (the
    outbox), so a broker that does not answer delays it, never loses it."""
    return await UserService().create(payload=payload, db=db, welcome_email=True)


@router.get("", response_model=Page[UserRead])
async def list_users(_: UserReader, pagination: Pagination, db: DBSession) -> dict[str, Any]:
    """All active users, paginated (`user.read`)."""
    return await UserService().list(params=pagination, db=db)


@router.get("/me", response_model=UserRead)
async def read_me(user: CurrentUser) -> dict[str, Any]:
    """The signed-in user."""
    return user.profile()


@router.get("/{username}", response_model=UserPublic)
@cache(profile_cache_key)
async def read_profile(username: str, db: DBSession) -> dict[str, Any]:
    """Anyone's public profile (cached; every write to the user drops it)."""
    return await UserService().get_public_profile(username=username, db=db)


@router.patch(
    "/{username}",
    response_model=UserRead,
    dependencies=[Depends(current_verified_user)],
    responses=responses(409, e409="The username is taken"),
)
async def update_user(
    username: str, payload: UserUpdate, context: CurrentSession, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Change your own profile (superusers: anyone's). `password` only for a superuser setting
    someone else's (all their sessions end); your own changes through
    `POST /api/v1/auth/change-password`, the email through
    `POST /api/v1/auth/email/change-request`. 403 for an unverified account when
    `EMAIL_VERIFICATION_REQUIRED`."""
    return await UserService().update(
        username=username,
        payload=payload,
        actor=context.principal,
        db=db,
        audit=audit,
        keep_session_id=context.session_id,
    )


@router.delete("/{username}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(username: str, context: CurrentSession, db: DBSession, audit: Audit) -> None:
    """Soft-delete your own account (superusers: anyone's); its sessions end. Session only:
    an API key cannot delete an account (401)."""
    await UserService().delete(username=username, actor=context.principal, db=db, audit=audit)


@router.patch("/{username}/tier", response_model=UserRead)
async def assign_tier(
    username: str, payload: UserTierUpdate, _: UserUpdater, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Move a user to another tier (`user.update`)."""
    return await UserService().assign_tier(username=username, payload=payload, db=db, audit=audit)
