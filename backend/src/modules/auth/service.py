"""Login, logout and session management on top of the session store and the login throttle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.passwords import verify_password
from src.infrastructure.auth.tokens import new_device_token, read_device_token
from src.infrastructure.config import settings
from src.infrastructure.database.models import utcnow
from src.modules.auth.schemas import normalise_identifier
from src.modules.auth.sessions import Principal, get_session_store
from src.modules.auth.sessions.base import PRINCIPAL_FIELDS
from src.modules.auth.throttle import Attempt, account_key, login_throttle
from src.modules.common.exceptions import NotAuthenticatedError, ResourceNotFoundError
from src.modules.user.crud import crud_users

BAD_CREDENTIALS = "Incorrect username or password"


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    principal: Principal
    expires_at: datetime
    device_token: str  # the browser's device cookie for this account (new or kept)


class AuthService:
    async def login(
        self,
        *,
        identifier: str,
        password: str,
        db: AsyncSession,
        ip_address: str | None = None,
        user_agent: str | None = None,
        previous_token: str | None = None,
        device_token: str | None = None,
    ) -> LoginResult:
        """Check credentials (through the login throttle), then `sign_in`.

        Unknown and deleted users cost the same argon2 work and the same throttling as real
        ones.
        """
        identifier = normalise_identifier(identifier)
        if "@" in identifier:
            row = await crud_users.get(db, email=identifier, is_deleted=False)
        else:
            row = await crud_users.get(db, username=identifier, is_deleted=False)
        # Nothing written yet: end the read's transaction, so its pooled connection goes back
        # while the throttle is asked and the password is hashed.
        await db.commit()
        user_id: int | None = row["id"] if row else None
        device = read_device_token(device_token)
        attempt = Attempt(
            account=account_key(user_id=user_id, identifier=identifier),
            ip=ip_address or "",
            device=device[1] if device is not None and device[0] == user_id else None,
        )
        throttled = login_throttle.enabled
        if throttled:
            await login_throttle.check(attempt)
        valid, new_hash = await verify_password(password, row["hashed_password"] if row else None)
        if row is None or not valid:
            if throttled:
                await login_throttle.record_failure(attempt)
            raise NotAuthenticatedError(BAD_CREDENTIALS)
        if throttled:
            await login_throttle.record_success(attempt)
        if new_hash is not None:  # hash parameters changed since this password was set
            await crud_users.update(db, {"hashed_password": new_hash}, id=row["id"], commit=False)
        return await self.sign_in(
            db,
            user=row,
            ip_address=ip_address,
            user_agent=user_agent,
            previous_token=previous_token,
            device_token=device_token if device_token and attempt.device else None,
        )

    async def sign_in(
        self,
        db: AsyncSession,
        *,
        user: dict[str, Any],
        ip_address: str | None = None,
        user_agent: str | None = None,
        previous_token: str | None = None,
        device_token: str | None = None,
    ) -> LoginResult:
        """Open a session for a user whose identity was just proven (a password, an OAuth
        provider): every way in ends here. Ends the client's previous session, so a planted
        session id never survives a sign-in, and commits."""
        if previous_token:
            await get_session_store().delete_by_token(db, previous_token)
        token = await get_session_store().create(
            db, user_id=user["id"], ip_address=ip_address, user_agent=user_agent
        )
        await db.commit()
        return LoginResult(
            token=token,
            principal=Principal(**{name: user[name] for name in PRINCIPAL_FIELDS}),
            expires_at=utcnow() + timedelta(seconds=settings.SESSION_ABSOLUTE_TIMEOUT_SECONDS),
            device_token=device_token or new_device_token(user["id"]),
        )

    async def logout(self, *, token: str | None, db: AsyncSession) -> None:
        if token:
            await get_session_store().delete_by_token(db, token)
            await db.commit()

    async def logout_all(self, *, user_id: int, db: AsyncSession) -> None:
        await get_session_store().delete_for_user(db, user_id=user_id)
        await db.commit()

    async def list_sessions(
        self, *, user_id: int, current_session_id: str, db: AsyncSession
    ) -> list[dict[str, Any]]:
        sessions = await get_session_store().list_for_user(db, user_id=user_id)
        return [session | {"current": session["id"] == current_session_id} for session in sessions]

    async def revoke_session(self, *, session_id: str, user_id: int, db: AsyncSession) -> None:
        """End one of the caller's sessions; someone else's session is simply not found."""
        if not await get_session_store().delete_by_id(db, session_id=session_id, user_id=user_id):
            raise ResourceNotFoundError("Session not found")
        await db.commit()
