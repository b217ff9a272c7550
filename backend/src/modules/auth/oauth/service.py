"""OAuth sign-in: the authorization-code flow with PKCE, then the account-linking rules, then
`AuthService.sign_in` (the one way every sign-in ends: session, CSRF and device cookies).

The flow in progress lives in a sealed cookie, not on the server:

- Starting a sign-in writes nothing: the state (256 random bits), the provider, the
  `redirect_to` path and `remember_me` go into a signed, ten-minute, HttpOnly cookie scoped to
  `/api/v1/auth/oauth` (SameSite=Lax, so the provider's top-level redirect back carries it).
  Anonymous traffic on the start route therefore costs no database write and leaves nothing
  to clean up. The PKCE verifier is not stored at all: it is derived from the state with the
  server's key (`derived_secret`), so it never reaches the browser and only this server can
  produce it for the token exchange.
- The callback is accepted only from the browser that started the flow (the `state` in the
  URL must equal the one sealed in that browser's cookie, so a callback URL forged or stolen
  elsewhere is refused) and only once: the state's keyed hash is recorded in
  `oauth_used_states` (an insert that does nothing on a conflict, committed before the code is
  exchanged) and a second callback with it is refused, even with the cookie replayed. The
  records expire with the flow they belonged to and are pruned as new ones come in. (The
  `account_tokens` table was the other candidate; its rows belong to a user, and a flow in
  progress has none yet.)
- One flow per browser at a time: starting another replaces the cookie, and the earlier
  one's callback is refused (`invalid_state`).

Linking rules, in order:

1. An identity already linked (provider, subject) signs in as its user (refused when that
   user is deleted).
2. Otherwise the provider must vouch for the email address (`email_verified`); if it does not,
   the sign-in is refused and nothing is written, whether or not a user has that address.
3. A verified address that belongs to a user links the identity to that user (refused when
   the user already has another identity at this provider, or is deleted). When that user
   had never verified the address, whoever set its password never proved they own it (an
   attacker may pre-register a victim's address): the account is marked verified, its
   password is replaced by an unusable one and its sessions end, so only the provider's
   account owner gets in (a password reset sets a new password).
4. A verified address nobody has creates a user (`UserService.create_verified`: default
   tier, verified, a unique username from the address or login, an unusable password).

Failures (the provider denied, a bad/expired/replayed state, a provider error, an unverified
address, a conflict) are an `OAuthSignInError` carrying a short code; the route turns every
one into a 303 to `FRONTEND_URL/login?error=<code>`, the same way every time.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx2
from authlib.integrations.httpx_client import OAuthError
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from src.infrastructure.auth.passwords import unusable_password_hash
from src.infrastructure.auth.tokens import (
    derived_secret,
    hash_purpose_token,
    new_token,
    read_device_token,
    seal,
    unseal,
)
from src.infrastructure.database.models import utcnow
from src.modules.audit.context import SYSTEM, AuditContext
from src.modules.audit.kinds import AuditKind
from src.modules.audit.service import Target, record
from src.modules.auth.mfa.service import remove_mfa
from src.modules.auth.oauth.models import OAuthAccount, OAuthUsedState
from src.modules.auth.oauth.providers import Identity, Provider, ProviderResponseError, client
from src.modules.auth.service import AuthService, SignInResult
from src.modules.auth.sessions import end_sessions
from src.modules.common.exceptions import BadRequestError, DuplicateValueError
from src.modules.user.crud import crud_users
from src.modules.user.service import UserService

logger = logging.getLogger("src.auth.oauth")

FLOW_TTL_SECONDS = 600
_FLOW = "oauth_flow"  # the seal's purpose
_PKCE = "oauth_pkce"  # the verifier's derivation purpose
_STATE = "oauth_state"  # the used-state hash's purpose
MAX_REDIRECT_LENGTH = 2048
# A path on this origin: "/" then anything but a second "/" or "\" (which browsers read as
# "//host", another origin), and no control characters or spaces anywhere (browsers drop tabs
# and newlines from URLs, so "/\t/evil.example" would become "//evil.example").
_SAME_ORIGIN_PATH = re.compile(r"/(?![/\\])[^\x00-\x20\x7f]*")


class Failure(StrEnum):
    """What `/login?error=` says when an OAuth sign-in fails."""

    ACCESS_DENIED = "access_denied"  # the user (or the provider) declined
    INVALID_STATE = "invalid_state"  # no live flow in this browser, a mismatch, or a replay
    PROVIDER_ERROR = "provider_error"  # the code exchange or the profile request failed
    EMAIL_UNVERIFIED = "email_unverified"  # the provider does not vouch for the address
    ACCOUNT_CONFLICT = "account_conflict"  # the address's user has another such identity
    ACCOUNT_UNAVAILABLE = "account_unavailable"  # the user is deleted
    SIGN_IN_FAILED = "sign_in_failed"  # refused while signing in (say a password changed)


class OAuthSignInError(Exception):
    def __init__(self, code: Failure, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason  # for the log only, never shown


def safe_redirect_path(value: str | None) -> str:
    """`value` when it is a path on this origin, else "/"."""
    if value and len(value) <= MAX_REDIRECT_LENGTH and _SAME_ORIGIN_PATH.fullmatch(value):
        return value
    return "/"


@dataclass(frozen=True, slots=True)
class Started:
    authorization_url: str  # where to send the browser
    flow_cookie: str  # the sealed flow, for the browser to bring back


@dataclass(frozen=True, slots=True)
class Completed:
    login: SignInResult  # a session, or (MFA on) a pending sign-in awaiting its code
    redirect_to: str  # a same-origin path
    remember_me: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """The browser finishing a sign-in, as `AuthService.sign_in` wants it."""

    ip_address: str | None = None
    user_agent: str | None = None
    session_token: str | None = None  # its current session cookie, ended by the sign-in
    device_token: str | None = None
    audit: AuditContext = SYSTEM  # the request, for the audit log


class OAuthService:
    async def start(
        self, provider: Provider, *, redirect_uri: str, redirect_to: str | None, remember_me: bool
    ) -> Started:
        """The provider's authorization URL (state and S256 PKCE challenge included) and the
        flow cookie that binds the sign-in to this browser."""
        state = new_token()
        async with client(provider, redirect_uri=redirect_uri) as http:
            url, _ = http.create_authorization_url(
                provider.authorize_url, state=state, code_verifier=derived_secret(_PKCE, state)
            )
        flow = {
            "provider": provider.name,
            "state": state,
            "redirect_to": safe_redirect_path(redirect_to),
            "remember_me": "1" if remember_me else "",
        }
        return Started(
            authorization_url=url, flow_cookie=seal(_FLOW, flow, ttl_seconds=FLOW_TTL_SECONDS)
        )

    async def complete(
        self,
        db: AsyncSession,
        provider: Provider,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        flow_cookie: str | None,
        redirect_uri: str,
        caller: Caller,
    ) -> Completed:
        """Finish the sign-in the provider sent the browser back from; `OAuthSignInError` when
        it cannot be."""
        flow, state, expires_at = _live_flow(provider, state, flow_cookie)
        if not await _use_state(db, state, expires_at):
            raise OAuthSignInError(Failure.INVALID_STATE, "the state was used already")
        if error:
            raise OAuthSignInError(Failure.ACCESS_DENIED, f"the provider answered {error!r}")
        if not code:
            raise OAuthSignInError(Failure.PROVIDER_ERROR, "the callback carried no code")
        identity = await _identify(provider, code=code, state=state, redirect_uri=redirect_uri)
        try:
            user = await self._account_for(db, provider.name, identity, caller.audit)
            device = read_device_token(caller.device_token)
            login = await AuthService().sign_in(
                db,
                user=user,
                audit=caller.audit,
                method=f"oauth:{provider.name}",
                ip_address=caller.ip_address,
                user_agent=caller.user_agent,
                previous_token=caller.session_token,
                device_token=caller.device_token if device and device[0] == user["id"] else None,
            )
        except (IntegrityError, DuplicateValueError) as clash:
            # A concurrent sign-in linked or created the same identity or address first.
            await db.rollback()
            # The type only: the database's message carries the row's values (personal data).
            raise OAuthSignInError(Failure.ACCOUNT_CONFLICT, type(clash).__name__) from None
        logger.info("oauth sign-in: user %s through %s", user["id"], provider.name)
        return Completed(
            login=login,
            redirect_to=safe_redirect_path(flow.get("redirect_to")),
            remember_me=bool(flow.get("remember_me")),
        )

    async def _account_for(
        self, db: AsyncSession, provider: str, identity: Identity, audit: AuditContext
    ) -> dict[str, Any]:
        """The user `identity` signs in as (the full `users` row), linking or creating one as
        the rules in the module docstring say; nothing is committed (a new link is audited, in
        the sign-in's transaction)."""
        linked = (
            await db.execute(
                select(OAuthAccount.user_id).where(
                    OAuthAccount.provider == provider, OAuthAccount.subject == identity.subject
                )
            )
        ).scalar_one_or_none()
        if linked is not None:
            user = await crud_users.get(db, id=linked)
            if user is None or user["is_deleted"]:
                raise OAuthSignInError(Failure.ACCOUNT_UNAVAILABLE, f"user {linked} is deleted")
            return user
        if not identity.email or not identity.email_verified:
            raise OAuthSignInError(
                Failure.EMAIL_UNVERIFIED, f"{provider} does not vouch for the address"
            )
        email = identity.email.strip().lower()
        user = await crud_users.get(db, email=email)
        new_user = claimed = False
        if user is None:
            new_user = True
            try:
                user = await UserService().create_verified(
                    email=email,
                    username_hint=identity.username_hint or email.partition("@")[0],
                    name=identity.name,
                    db=db,
                )
            except BadRequestError as invalid:
                raise OAuthSignInError(Failure.PROVIDER_ERROR, invalid.detail) from None
        elif user["is_deleted"]:
            raise OAuthSignInError(Failure.ACCOUNT_UNAVAILABLE, f"user {user['id']} is deleted")
        else:
            other = await db.execute(
                select(OAuthAccount.id).where(
                    OAuthAccount.user_id == user["id"], OAuthAccount.provider == provider
                )
            )
            if other.first() is not None:
                raise OAuthSignInError(
                    Failure.ACCOUNT_CONFLICT,
                    f"user {user['id']} is linked to another {provider} identity",
                )
            if not user["is_verified"]:
                claimed = True
                user = await _claim_unverified(db, user)
        db.add(
            OAuthAccount(
                provider=provider,
                subject=identity.subject,
                user_id=user["id"],
                email=email,
                created_at=utcnow(),
            )
        )
        await db.flush()
        record(
            db,
            AuditKind.OAUTH_LINKED,
            audit,
            target=Target.user(user["id"]),
            actor_id=user["id"],
            data={"provider": provider, "new_user": new_user, "claimed_unverified": claimed},
        )
        return user


def _live_flow(
    provider: Provider, state: str | None, flow_cookie: str | None
) -> tuple[dict[str, str], str, datetime]:
    """The flow this browser started with `provider` and `state`, its state and when it
    expires."""
    sealed = unseal(_FLOW, flow_cookie)
    if sealed is None:
        raise OAuthSignInError(Failure.INVALID_STATE, "no live sign-in in this browser")
    flow, expires = sealed
    if flow.get("provider") != provider.name:
        raise OAuthSignInError(Failure.INVALID_STATE, "the sign-in began with another provider")
    expected = flow.get("state", "").encode()
    if not state or not hmac.compare_digest(expected, state.encode()):
        raise OAuthSignInError(Failure.INVALID_STATE, "the state does not match this browser's")
    return flow, state, datetime.fromtimestamp(expires, UTC)


async def _use_state(db: AsyncSession, state: str, expires_at: datetime) -> bool:
    """Record `state` as used (and prune the expired records); False when it already was.
    Commits, so the state is spent whatever happens next."""
    now = utcnow()
    await db.execute(delete(OAuthUsedState).where(OAuthUsedState.expires_at <= now))
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    result = await db.execute(
        dialect.insert(OAuthUsedState)
        .values(state_hash=hash_purpose_token(_STATE, state), expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(OAuthUsedState.state_hash)
    )
    fresh = result.first() is not None
    await db.commit()
    return fresh


async def _identify(provider: Provider, *, code: str, state: str, redirect_uri: str) -> Identity:
    """Exchange `code` (with the flow's PKCE verifier) and read who signed in."""
    async with client(provider, redirect_uri=redirect_uri) as http:
        try:
            await http.fetch_token(
                provider.token_url,
                grant_type="authorization_code",
                code=code,
                code_verifier=derived_secret(_PKCE, state),
            )
            return await provider.fetch_identity(http, provider)
        except (
            OAuthError,
            httpx2.HTTPError,
            ProviderResponseError,
            ValueError,  # a malformed answer (pydantic's ValidationError included)
            KeyError,
            TypeError,
        ) as failure:
            # The type only: a validation error's text quotes the provider's profile.
            raise OAuthSignInError(Failure.PROVIDER_ERROR, type(failure).__name__) from None


async def _claim_unverified(db: AsyncSession, user: dict[str, Any]) -> dict[str, Any]:
    """The provider's account owner takes over a user who never verified the address: the
    password whoever registered it set stops working, any MFA they enrolled is removed (else
    their authenticator would gate the owner's sign-in) and their sessions end."""
    changes = {
        "is_verified": True,
        "hashed_password": await unusable_password_hash(),
        "mfa_enabled": False,
    }
    await crud_users.update(db, changes, id=user["id"], commit=False)
    await remove_mfa(db, user_id=user["id"])
    await end_sessions(db, user_id=user["id"])
    return user | changes
