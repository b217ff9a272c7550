"""User rules: sign-up, profile changes, soft delete, tier assignment.

Every method takes the caller's `db` session and commits once at the end of a successful
operation, so a failed request leaves nothing half-written. Reads return dicts (FastCRUD).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.passwords import hash_password, unusable_password_hash
from src.infrastructure.cache import invalidate
from src.infrastructure.database.models import utcnow
from src.infrastructure.database.statements import fetch_all, fetch_one, fetch_value
from src.infrastructure.taskiq import outbox
from src.modules.audit.context import SYSTEM, AuditContext
from src.modules.audit.kinds import AuditKind
from src.modules.audit.service import Target, record
from src.modules.auth.sessions import Principal, end_sessions
from src.modules.common.exceptions import (
    BadRequestError,
    DuplicateValueError,
    ForbiddenError,
    InvalidValueError,
    ResourceNotFoundError,
)
from src.modules.common.schemas import PageParams, build_page
from src.modules.common.transactions import commit_or_conflict
from src.modules.tier.service import TierService
from src.modules.user.crud import PUBLIC_PROFILE, USERS_COUNT, USERS_PAGE, crud_users
from src.modules.user.password_policy import enforce_password_policy
from src.modules.user.schemas import (
    Email,
    Name,
    UserCreate,
    UserCreateInternal,
    Username,
    UserRead,
    UserTierUpdate,
    UserUpdate,
)
from src.modules.user.tasks import send_welcome_email

EMAIL_TAKEN = "This email is already registered"
USERNAME_TAKEN = "This username is already taken"

_EMAIL = TypeAdapter(Email)
_USERNAME = TypeAdapter(Username)
_NAME = TypeAdapter(Name)
_NOT_USERNAME_CHARS = re.compile(r"[^a-z0-9_.-]+")
_UNTRIMMED_ENDS = re.compile(r"^[^a-z0-9]+|[^a-z0-9]+$")


def profile_cache_key(username: str) -> str:
    """The cache key of a public profile: `GET /users/{username}` caches it, writes drop it."""
    return f"user:{username.lower()}"


class UserService:
    async def get_by_id(self, *, user_id: int, db: AsyncSession) -> dict[str, Any]:
        user = await crud_users.get(db, schema_to_select=UserRead, id=user_id, is_deleted=False)
        if user is None:
            raise ResourceNotFoundError("User not found")
        return user

    async def get_by_username(self, *, username: str, db: AsyncSession) -> dict[str, Any]:
        user = await crud_users.get(
            db, schema_to_select=UserRead, username=username.lower(), is_deleted=False
        )
        if user is None:
            raise ResourceNotFoundError("User not found")
        return user

    async def get_public_profile(self, *, username: str, db: AsyncSession) -> dict[str, Any]:
        """What anyone may see of a user (`UserPublic`); the hot read of public profiles."""
        user = await fetch_one(db, PUBLIC_PROFILE, {"username": username.lower()})
        if user is None:
            raise ResourceNotFoundError("User not found")
        return user

    async def list(self, *, params: PageParams, db: AsyncSession) -> dict[str, Any]:
        """Active users by id, one page, in one round trip (the total rides on every row)."""
        rows = await fetch_all(
            db, USERS_PAGE, {"limit": params.items_per_page, "offset": params.offset}
        )
        if rows:
            total = rows[0]["total_count"]
        elif params.offset:  # past the end: no row carries the total
            total = await fetch_value(db, USERS_COUNT)
        else:
            total = 0
        for row in rows:
            del row["total_count"]
        return build_page(rows, total, params)

    async def create(
        self,
        *,
        payload: dict[str, Any] | UserCreate,
        db: AsyncSession,
        is_superuser: bool = False,
        is_verified: bool = False,
        welcome_email: bool = False,
        audit: AuditContext = SYSTEM,
    ) -> dict[str, Any]:
        """Register a user on the default tier; 409 when the email or username is taken.
        With `welcome_email`, the welcome email task is written to the outbox in the same
        transaction: committed with the user, or not at all. A new superuser (the CLI) is on
        the audit log."""
        data = payload if isinstance(payload, UserCreate) else UserCreate.model_validate(payload)
        await self._ensure_unique(db, email=data.email, username=data.username)
        hashed = await hash_password(data.password)
        tier_id = await TierService().ensure_default(db=db)
        row = UserCreateInternal(
            **data.model_dump(exclude={"password"}),
            hashed_password=hashed,
            is_superuser=is_superuser,
            is_verified=is_verified,
            tier_id=tier_id,
        )
        async with commit_or_conflict(db, _which_is_taken):
            # Flushed and read back inside the transaction (a clash raises here): nothing is
            # read after the commit, so a sign-up that committed is never answered 503.
            created: dict[str, Any] = await crud_users.create(
                db, row, commit=False, schema_to_select=UserRead
            )  # a dict of every column (`schema_to_select` without `return_as_model`)
            if welcome_email:
                await outbox.add(db, send_welcome_email, created["id"])
            if is_superuser:
                record(
                    db,
                    AuditKind.USER_SUPERUSER_GRANTED,
                    audit,
                    target=Target.user(created["id"]),
                    data={"new_user": True},
                )
        return {key: created[key] for key in UserRead.model_fields}

    async def create_verified(
        self, *, email: str, username_hint: str, name: str | None, db: AsyncSession
    ) -> dict[str, Any]:
        """Register a user whose email address an identity provider verified (an OAuth
        sign-up) and return the full `users` row.

        On the default tier, `is_verified`, with a username derived from `username_hint`
        (made valid and unique) and a password nobody knows: password sign-in stays impossible
        until a reset sets one. Added to the caller's transaction (flushed, not committed), so
        the caller links the identity and commits both at once. 409 when the email is taken,
        400 when it is not a valid address.
        """
        try:
            email = _EMAIL.validate_python(email)
        except ValidationError:
            raise BadRequestError("The provider gave an invalid email address") from None
        await self._ensure_unique(db, email=email, username=None)
        username = await self._available_username(db, username_hint)
        try:
            display_name = _NAME.validate_python((name or "").strip()[:50])
        except ValidationError:
            display_name = username
        row = UserCreateInternal(
            name=display_name,
            username=username,
            email=email,
            hashed_password=await unusable_password_hash(),
            tier_id=await TierService().ensure_default(db=db),
            is_verified=True,
        )
        await crud_users.create(db, row, commit=False)
        created = await crud_users.get(db, email=email)
        if created is None:  # pragma: no cover - the row was flushed just above
            raise ResourceNotFoundError("User not found")
        return created

    async def update(
        self,
        *,
        username: str,
        payload: UserUpdate,
        actor: Principal,
        db: AsyncSession,
        audit: AuditContext,
        keep_session_id: str | None = None,
    ) -> dict[str, Any]:
        """Change a profile. A new password ends every session but the caller's own; it must
        pass the password policy against the account's new or stored username and email."""
        user = await self._get_for_write(username=username, actor=actor, db=db)
        changes = payload.model_dump(exclude_unset=True)
        changes = {key: value for key, value in changes.items() if value is not None}
        if "password" in changes:
            _only_for_someone_else(user, actor)
            _check_new_password(changes, user)
        await self._ensure_unique(
            db,
            email=None,
            username=changes.get("username")
            if changes.get("username") != user["username"]
            else None,
        )
        if "password" in changes:
            changes["hashed_password"] = await hash_password(changes.pop("password"))
        if not changes:
            return user
        async with commit_or_conflict(db, _which_is_taken):
            await crud_users.update(db, changes, id=user["id"], commit=False)
            if "hashed_password" in changes:
                # Before the commit: in the database store it is the same transaction; in Redis
                # a failure here aborts the change instead of leaving old sessions alive.
                keep = keep_session_id if actor.id == user["id"] else None
                await end_sessions(db, user_id=user["id"], keep_session_id=keep)
                record(
                    db,
                    AuditKind.PASSWORD_CHANGED,
                    audit,
                    target=Target.user(user["id"]),
                    data={"by_superuser": True},
                )
        new_username = changes.get("username", user["username"])
        await invalidate(profile_cache_key(user["username"]), profile_cache_key(new_username))
        return await self.get_by_id(user_id=user["id"], db=db)

    async def delete(
        self, *, username: str, actor: Principal, db: AsyncSession, audit: AuditContext
    ) -> None:
        """Soft delete: the row stays (email and username stay reserved), sessions end."""
        user = await self._get_for_write(username=username, actor=actor, db=db)
        await self.soft_delete(db, user_id=user["id"], username=user["username"], audit=audit)
        await db.commit()
        await invalidate(profile_cache_key(user["username"]))

    async def soft_delete(
        self, db: AsyncSession, *, user_id: int, username: str, audit: AuditContext
    ) -> None:
        """The writes of a soft delete, in the caller's transaction (it commits, then drops
        the profile from the cache): the flag, the end of every session, the audit event."""
        await crud_users.update(
            db, {"is_deleted": True, "deleted_at": utcnow()}, id=user_id, commit=False
        )
        await end_sessions(db, user_id=user_id)
        record(
            db,
            AuditKind.USER_DELETED,
            audit,
            target=Target.user(user_id),
            data={"username": username},
        )

    async def assign_tier(
        self,
        *,
        username: str,
        payload: UserTierUpdate,
        db: AsyncSession,
        audit: AuditContext = SYSTEM,
    ) -> dict[str, Any]:
        user = await self.get_by_username(username=username, db=db)
        tier = await TierService().get_by_name(name=payload.tier_name, db=db)
        await crud_users.update(db, {"tier_id": tier["id"]}, id=user["id"], commit=False)
        record(
            db,
            AuditKind.USER_TIER_CHANGED,
            audit,
            target=Target.user(user["id"]),
            data={"from_tier_id": user["tier_id"], "tier_id": tier["id"], "tier": tier["name"]},
        )
        await db.commit()
        await invalidate(profile_cache_key(user["username"]))
        return await self.get_by_id(user_id=user["id"], db=db)

    async def set_superuser(
        self, *, user_id: int, value: bool, db: AsyncSession, audit: AuditContext = SYSTEM
    ) -> None:
        """Grant or revoke superuser; the user's sessions end so no stale privilege survives."""
        await crud_users.update(db, {"is_superuser": value}, id=user_id, commit=False)
        await end_sessions(db, user_id=user_id)
        kind = AuditKind.USER_SUPERUSER_GRANTED if value else AuditKind.USER_SUPERUSER_REVOKED
        record(db, kind, audit, target=Target.user(user_id))
        await db.commit()

    # --- helpers ---------------------------------------------------------------------------

    async def _get_for_write(
        self, *, username: str, actor: Principal, db: AsyncSession
    ) -> dict[str, Any]:
        user = await self.get_by_username(username=username, db=db)
        if user["id"] != actor.id and not actor.is_superuser:
            raise ForbiddenError("You can only change your own account")
        return user

    async def _ensure_unique(
        self, db: AsyncSession, *, email: str | None, username: str | None
    ) -> None:
        if email is not None and await crud_users.exists(db, email=email):
            raise DuplicateValueError(EMAIL_TAKEN)
        if username is not None and await crud_users.exists(db, username=username):
            raise DuplicateValueError(USERNAME_TAKEN)

    async def _available_username(self, db: AsyncSession, hint: str) -> str:
        """A free username that looks like `hint` (an email's local part, a provider login):
        its allowed characters, then with a random suffix when it is taken or reserved."""
        base = _UNTRIMMED_ENDS.sub("", _NOT_USERNAME_CHARS.sub("_", hint.lower()))
        base = _UNTRIMMED_ENDS.sub("", base[:24])
        if len(base) < 3:
            base = f"user{base}"
        suffixed = [f"{base}-{secrets.randbelow(10_000):04d}" for _ in range(5)]
        for candidate in (base, *suffixed, f"user-{secrets.token_hex(6)}"):
            try:
                username = _USERNAME.validate_python(candidate)
            except ValidationError:
                continue  # a reserved name: try it with a suffix
            if not await crud_users.exists(db, username=username):
                return username
        raise DuplicateValueError(USERNAME_TAKEN)  # pragma: no cover - 48 random bits taken


def _only_for_someone_else(user: dict[str, Any], actor: Principal) -> None:
    """A password is set here only by a superuser, for someone else (who then signs in again).
    Your own goes through `POST /api/v1/auth/change-password`: it needs the current one,
    throttles guesses at it and tells your address."""
    if actor.id == user["id"] or not actor.is_superuser:
        raise InvalidValueError(
            "change your own password with POST /api/v1/auth/change-password",
            field="password",
        )


def _check_new_password(changes: dict[str, Any], user: dict[str, Any]) -> None:
    """The policy again, with the stored values the update does not change: the schema only
    saw the payload. A 422 shaped like the schema's own."""
    account = {key: changes.get(key, user[key]) for key in ("username", "email", "name")}
    if account.keys() <= changes.keys():
        return  # the schema already checked it against all three
    enforce_password_policy(changes["password"], **account)


def _which_is_taken(database_error: str) -> str:
    return EMAIL_TAKEN if "email" in database_error else USERNAME_TAKEN
