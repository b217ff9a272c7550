"""The admin panel's views: one `AdminView` subclass per table.

What every view shares (`AdminView`): only superusers / `admin.access` holders see it; no
delete and no import unless a view allows them; the columns shown, exported and edited are
whitelists (never `hashed_password`, a token hash or an API key hash); and every write goes
through one method of the view (`insert_model`, `update_model`, `delete_model`, or an action's
POST handler), which uses the owning slice's service or rules in one transaction. Each of those
places records its audit event (`via: admin`) in the same transaction.

Actions that write (verify, deactivate, revoke, ...) are two routes: sqladmin's action link
(a GET, so a link can never change anything) shows a confirmation page, and its form POSTs,
CSRF-checked like every admin write, to the same path (`confirm` and `selected`).

Adding a view: a class like `TierAdmin` (model, columns, what may change) appended to `VIEWS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sqladmin import ModelView, action, expose
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from wtforms import Form, PasswordField
from wtforms.validators import Optional

from src.infrastructure.auth.passwords import hash_password
from src.infrastructure.cache import invalidate
from src.infrastructure.config import settings
from src.infrastructure.database.session import get_sessionmaker
from src.interfaces.admin.access import can_use_view
from src.interfaces.admin.auth import admin_audit, admin_principal
from src.modules.audit.kinds import AuditKind, TargetType
from src.modules.audit.models import AuditEvent
from src.modules.audit.permissions import AUDIT_READ
from src.modules.audit.service import Target, record
from src.modules.auth.apikeys.models import ApiKey
from src.modules.auth.apikeys.service import ApiKeyService
from src.modules.auth.models import UserSession
from src.modules.auth.permissions import APIKEY_ADMIN
from src.modules.auth.sessions import end_sessions, get_session_store
from src.modules.common.exceptions import (
    DomainError,
    InvalidValueError,
    ResourceNotFoundError,
)
from src.modules.rate_limit.models import RateLimit
from src.modules.rate_limit.permissions import RATELIMIT_MANAGE
from src.modules.rate_limit.schemas import RateLimitCreate, RateLimitUpdate
from src.modules.rate_limit.service import RateLimitService
from src.modules.rbac.models import Role
from src.modules.rbac.permissions import ROLE_READ
from src.modules.rbac.service import RoleService
from src.modules.tier.models import Tier
from src.modules.tier.permissions import TIER_MANAGE
from src.modules.tier.schemas import TierCreate, TierUpdate
from src.modules.tier.service import TierService
from src.modules.user.models import User
from src.modules.user.password_policy import enforce_password_policy
from src.modules.user.schemas import UserUpdate
from src.modules.user.service import UserService, profile_cache_key


def write_session() -> AsyncSession:
    """A transactional session for one admin write (sqladmin's own requests are not FastAPI
    routes, so they get no `DBSession`)."""
    return get_sessionmaker()()


class AdminView(ModelView):
    """The base of every admin view: see the module docstring."""

    can_delete: ClassVar[bool] = False
    can_import: ClassVar[bool] = False
    page_size: ClassVar[int] = 25
    # What a non-superuser with `admin.access` also needs for this view; None: superusers only.
    permissions: ClassVar[tuple[str, ...] | None] = None

    def is_accessible(self, request: Request) -> bool:
        try:
            return can_use_view(admin_principal(request), self.permissions)
        except KeyError:  # not signed in: sqladmin's login check runs first anyway
            return False

    def is_visible(self, request: Request) -> bool:
        return self.is_accessible(request)

    @staticmethod
    def selected(request: Request) -> list[str]:
        """The primary keys an action was asked for (`?pks=1,2`)."""
        return [pk for pk in request.query_params.get("pks", "").split(",") if pk]

    async def confirm(self, request: Request, question: str, label: str) -> Response:
        """The confirmation page of an action: a form that POSTs to the action's own path."""
        context = {
            "model_view": self,
            "pks": self.selected(request),
            "question": question,
            "label": label,
        }
        return await self.templates.TemplateResponse(request, "admin/confirm.html", context)

    def back_to_list(self, request: Request) -> Response:
        return RedirectResponse(request.url_for("admin:list", identity=self.identity), 303)


def _int_pks(pks: Sequence[str]) -> list[int]:
    try:
        return [int(pk) for pk in pks]
    except ValueError:
        raise InvalidValueError("The selection must be numeric ids", field="pks") from None


class UserAdmin(AdminView, model=User):
    name = "User"
    name_plural = "Users"
    icon = "fa-solid fa-user"
    column_list: ClassVar[Any] = [
        User.id,
        User.username,
        User.email,
        User.name,
        User.tier_id,
        User.is_verified,
        User.is_superuser,
        User.is_deleted,
        User.created_at,
    ]
    column_details_list: ClassVar[Any] = [
        *column_list,
        User.mfa_enabled,
        User.updated_at,
        User.deleted_at,
    ]
    column_export_list: ClassVar[Any] = column_list
    column_searchable_list: ClassVar[Any] = [User.username, User.email]
    column_sortable_list: ClassVar[Any] = [User.id, User.username, User.email, User.created_at]
    column_default_sort: ClassVar[Any] = [(User.id, False)]
    # Email, username and the superuser flag change through their own flows (a confirmed
    # address, the API, `app create-superuser`); the password only as a new one, hashed.
    form_columns: ClassVar[Any] = [User.name, User.tier_id, User.is_verified]
    form_include_pk = True  # lets the `tier_id` foreign key into the form
    can_create = False  # accounts sign up through the API or `app create-superuser`

    async def scaffold_form(self, rules: list[str] | None = None) -> type[Form]:
        base = await super().scaffold_form(rules)

        class UserForm(base):  # type: ignore[misc, valid-type]
            new_password = PasswordField(
                "New password",
                validators=[Optional()],
                render_kw={"class": "form-control", "autocomplete": "new-password"},
                description="Leave empty to keep the password. Setting one ends the "
                "user's sessions.",
            )

        return UserForm

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        actor = admin_principal(request)
        password = data.get("new_password") or None
        async with write_session() as db:
            user = await db.get(User, _int_pks([pk])[0])
            if user is None:
                raise ResourceNotFoundError("User not found")
            name = UserUpdate.model_validate({"name": data.get("name")}).name or user.name
            tier_id = data.get("tier_id")
            if tier_id is not None and await db.get(Tier, tier_id) is None:
                raise InvalidValueError(f"No tier has the id {tier_id}", field="tier_id")
            changed = sorted(
                field
                for field, old, new in (
                    ("name", user.name, name),
                    ("tier_id", user.tier_id, tier_id),
                    ("is_verified", user.is_verified, bool(data.get("is_verified"))),
                )
                if old != new
            )
            user.name, user.tier_id = name, tier_id
            user.is_verified = bool(data.get("is_verified"))
            if password:
                if user.id == actor.id:
                    raise InvalidValueError(
                        "Change your own password with POST /api/v1/auth/change-password",
                        field="new_password",
                    )
                enforce_password_policy(
                    password,
                    field="new_password",
                    username=user.username,
                    email=user.email,
                    name=name,
                )
                user.hashed_password = await hash_password(password)
                await end_sessions(db, user_id=user.id)  # before the commit, as the API does
            audit, target = admin_audit(request), Target.user(user.id)
            if changed:
                record(db, AuditKind.USER_UPDATED, audit, target=target, data={"fields": changed})
            if password:
                record(db, AuditKind.PASSWORD_CHANGED, audit, target=target)
            await db.commit()
        await invalidate(profile_cache_key(user.username))
        return user

    async def _users(self, db: AsyncSession, request: Request) -> list[User]:
        users = [await db.get(User, pk) for pk in _int_pks(self.selected(request))]
        return [user for user in users if user is not None]

    @action("verify", "Mark verified", add_in_detail=True)
    async def verify_confirm(self, request: Request) -> Response:
        return await self.confirm(request, "Mark these users' email addresses verified?", "Verify")

    @expose("/action/verify", methods=["POST"])
    async def verify(self, request: Request) -> Response:
        async with write_session() as db:
            for user in await self._users(db, request):
                if not user.is_verified:
                    user.is_verified = True
                    record(
                        db,
                        AuditKind.EMAIL_VERIFIED,
                        admin_audit(request),
                        target=Target.user(user.id),
                    )
            await db.commit()
        return self.back_to_list(request)

    @action("deactivate", "Deactivate", add_in_detail=True)
    async def deactivate_confirm(self, request: Request) -> Response:
        return await self.confirm(
            request, "Deactivate these accounts? Their sessions end at once.", "Deactivate"
        )

    @expose("/action/deactivate", methods=["POST"])
    async def deactivate(self, request: Request) -> Response:
        actor = admin_principal(request)
        async with write_session() as db:
            users = await self._users(db, request)
            if any(user.id == actor.id for user in users):
                raise InvalidValueError("You cannot deactivate your own account here")
            for user in users:  # `UserService.delete`'s writes, all in one transaction
                await UserService().soft_delete(
                    db, user_id=user.id, username=user.username, audit=admin_audit(request)
                )
            await db.commit()
        for user in users:
            await invalidate(profile_cache_key(user.username))
        return self.back_to_list(request)

    @action("end-sessions", "End all sessions", add_in_detail=True)
    async def end_sessions_confirm(self, request: Request) -> Response:
        return await self.confirm(request, "Sign these users out everywhere?", "End sessions")

    @expose("/action/end-sessions", methods=["POST"])
    async def end_all_sessions(self, request: Request) -> Response:
        async with write_session() as db:
            for user in await self._users(db, request):
                # The store's API: works for the Redis store too, across processes.
                await end_sessions(db, user_id=user.id)
                record(
                    db,
                    AuditKind.USER_SESSIONS_ENDED,
                    admin_audit(request),
                    target=Target.user(user.id),
                )
            await db.commit()
        return self.back_to_list(request)

    @action("give-role", "Give a role", add_in_detail=True)
    async def give_role_confirm(self, request: Request) -> Response:
        return await self._role_form(request, "Give which role to these users?", "Give role")

    @expose("/action/give-role", methods=["POST"])
    async def give_role(self, request: Request) -> Response:
        return await self._change_role(request, remove=False)

    @action("take-role", "Take a role back", add_in_detail=True)
    async def take_role_confirm(self, request: Request) -> Response:
        return await self._role_form(request, "Take which role back from these users?", "Take")

    @expose("/action/take-role", methods=["POST"])
    async def take_role(self, request: Request) -> Response:
        return await self._change_role(request, remove=True)

    async def _role_form(self, request: Request, question: str, label: str) -> Response:
        async with write_session() as db:
            roles = (await db.execute(select(Role.id, Role.name).order_by(Role.name))).all()
        context = {
            "model_view": self,
            "pks": self.selected(request),
            "roles": roles,
            "question": question,
            "label": label,
        }
        return await self.templates.TemplateResponse(request, "admin/role.html", context)

    async def _change_role(self, request: Request, *, remove: bool) -> Response:
        """Through `RoleService`, as the signed-in admin: the delegation rules and the audit
        events of the API apply. Taking back a role a user does not hold skips that user."""
        try:
            role_id = _int_pks([str((await request.form()).get("role_id", ""))])[0]
            async with write_session() as db:
                await RoleService().get(role_id=role_id, db=db)  # 404 for an unknown role
                change = RoleService().unassign if remove else RoleService().assign
                for user in await self._users(db, request):
                    try:
                        await change(
                            username=user.username,
                            role_id=role_id,
                            actor=admin_principal(request),
                            db=db,
                            audit=admin_audit(request),
                        )
                    except ResourceNotFoundError:
                        if not remove:
                            raise
        except DomainError as error:
            context = {"status_code": error.status_code, "message": error.detail}
            return await self.templates.TemplateResponse(
                request, "sqladmin/error.html", context, status_code=error.status_code
            )
        return self.back_to_list(request)


class TierAdmin(AdminView, model=Tier):
    name = "Tier"
    name_plural = "Tiers"
    icon = "fa-solid fa-layer-group"
    column_list: ClassVar[Any] = [Tier.id, Tier.name, Tier.created_at, Tier.updated_at]
    column_searchable_list: ClassVar[Any] = [Tier.name]
    form_columns: ClassVar[Any] = [Tier.name]
    can_delete = True
    permissions = (TIER_MANAGE.name,)

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        async with write_session() as db:
            created = await TierService().create(
                payload=TierCreate(name=data["name"]), db=db, audit=admin_audit(request)
            )
            return await db.get(Tier, created["id"])

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        async with write_session() as db:
            tier = await db.get(Tier, _int_pks([pk])[0])
            if tier is None:
                raise ResourceNotFoundError("Tier not found")
            payload = TierUpdate(name=data["name"])
            await TierService().update(
                name=tier.name, payload=payload, db=db, audit=admin_audit(request)
            )
            await db.refresh(tier)
            return tier

    async def delete_model(self, request: Request, pk: Any) -> None:
        async with write_session() as db:
            tier = await db.get(Tier, _int_pks([str(pk)])[0])
            if tier is None:
                raise ResourceNotFoundError("Tier not found")
            await TierService().delete(name=tier.name, db=db, audit=admin_audit(request))


class RateLimitAdmin(AdminView, model=RateLimit):
    name = "Rate-limit rule"
    name_plural = "Rate-limit rules"
    icon = "fa-solid fa-gauge"
    column_list: ClassVar[Any] = [
        RateLimit.id,
        RateLimit.tier_id,
        RateLimit.path,
        RateLimit.max_requests,
        RateLimit.period_seconds,
    ]
    column_searchable_list: ClassVar[Any] = [RateLimit.path]
    form_columns: ClassVar[Any] = [
        RateLimit.tier_id,
        RateLimit.path,
        RateLimit.max_requests,
        RateLimit.period_seconds,
    ]
    form_include_pk = True  # lets the `tier_id` foreign key into the form
    can_delete = True
    permissions = (RATELIMIT_MANAGE.name,)

    @staticmethod
    async def _tier_name(db: AsyncSession, tier_id: Any) -> str:
        tier = await db.get(Tier, tier_id) if tier_id is not None else None
        if tier is None:
            raise InvalidValueError(f"No tier has the id {tier_id}", field="tier_id")
        return tier.name

    async def insert_model(self, request: Request, data: dict[str, Any]) -> Any:
        async with write_session() as db:
            tier_name = await self._tier_name(db, data.get("tier_id"))
            payload = RateLimitCreate.model_validate(
                {key: data.get(key) for key in ("path", "max_requests", "period_seconds")}
            )
            created = await RateLimitService().create(
                tier_name=tier_name, payload=payload, db=db, audit=admin_audit(request)
            )
            await db.commit()
            return await db.get(RateLimit, created["id"])

    async def update_model(self, request: Request, pk: str, data: dict[str, Any]) -> Any:
        async with write_session() as db:
            rule = await db.get(RateLimit, _int_pks([pk])[0])
            if rule is None:
                raise ResourceNotFoundError("Rule not found")
            if data.get("tier_id") != rule.tier_id:
                raise InvalidValueError("A rule stays in its tier: add one to the other tier")
            payload = RateLimitUpdate.model_validate(
                {key: data.get(key) for key in ("path", "max_requests", "period_seconds")}
            )
            tier_name = await self._tier_name(db, rule.tier_id)
            await RateLimitService().update(
                tier_name=tier_name,
                rule_id=rule.id,
                payload=payload,
                db=db,
                audit=admin_audit(request),
            )
            await db.commit()
            await db.refresh(rule)
            return rule

    async def delete_model(self, request: Request, pk: Any) -> None:
        async with write_session() as db:
            rule = await db.get(RateLimit, _int_pks([str(pk)])[0])
            if rule is None:
                raise ResourceNotFoundError("Rule not found")
            tier_name = await self._tier_name(db, rule.tier_id)
            await RateLimitService().delete(
                tier_name=tier_name, rule_id=rule.id, db=db, audit=admin_audit(request)
            )


class ApiKeyAdmin(AdminView, model=ApiKey):
    name = "API key"
    name_plural = "API keys"
    icon = "fa-solid fa-key"
    column_list: ClassVar[Any] = [
        ApiKey.id,
        ApiKey.user_id,
        ApiKey.name,
        ApiKey.prefix,
        ApiKey.scopes,
        ApiKey.is_active,
        ApiKey.created_at,
        ApiKey.expires_at,
        ApiKey.last_used_at,
        ApiKey.revoked_at,
    ]
    column_details_list: ClassVar[Any] = [*column_list, ApiKey.last_used_ip]
    column_export_list: ClassVar[Any] = column_list
    column_searchable_list: ClassVar[Any] = [ApiKey.prefix, ApiKey.name]
    column_default_sort: ClassVar[Any] = [(ApiKey.id, True)]
    can_create = False  # a key is shown once, to its owner: `POST /api/v1/api-keys`
    can_edit = False
    permissions = (APIKEY_ADMIN.name,)

    @action("revoke", "Revoke", add_in_detail=True)
    async def revoke_confirm(self, request: Request) -> Response:
        return await self.confirm(request, "Revoke these API keys for good?", "Revoke")

    @expose("/action/revoke", methods=["POST"])
    async def revoke(self, request: Request) -> Response:
        ids = _int_pks(self.selected(request))
        async with write_session() as db:
            # Revoked, never deleted: the row stays for audit (as `ApiKeyService.revoke`).
            await ApiKeyService().revoke_any(key_ids=ids, db=db, audit=admin_audit(request))
        return self.back_to_list(request)


class SessionAdmin(AdminView, model=UserSession):
    """The `user_sessions` rows (the database session store). With the Redis store there are
    no rows: end a user's sessions from the Users view instead."""

    name = "Session"
    name_plural = "Sessions"
    icon = "fa-solid fa-right-to-bracket"
    column_list: ClassVar[Any] = [
        UserSession.id,
        UserSession.user_id,
        UserSession.created_at,
        UserSession.last_seen_at,
        UserSession.expires_at,
        UserSession.ip_address,
        UserSession.user_agent,
    ]
    column_export_list: ClassVar[Any] = column_list
    column_details_list: ClassVar[Any] = column_list
    column_searchable_list: ClassVar[Any] = [UserSession.ip_address]
    column_default_sort: ClassVar[Any] = [(UserSession.last_seen_at, True)]
    can_create = False
    can_edit = False

    @action("revoke", "Revoke", add_in_detail=True)
    async def revoke_confirm(self, request: Request) -> Response:
        return await self.confirm(request, "End these sessions?", "Revoke")

    @expose("/action/revoke", methods=["POST"])
    async def revoke(self, request: Request) -> Response:
        async with write_session() as db:
            for session_id in self.selected(request):
                row = await db.get(UserSession, session_id)
                if row is not None:  # through the store's API, never a raw row delete
                    await get_session_store().delete_by_id(
                        db, session_id=session_id, user_id=row.user_id
                    )
                    record(
                        db,
                        AuditKind.SESSION_REVOKED,
                        admin_audit(request),
                        target=Target.of(TargetType.SESSION, session_id, user_id=row.user_id),
                    )
            await db.commit()
        return self.back_to_list(request)


class RoleAdmin(AdminView, model=Role):
    """Roles, read-only: their changes go through `/api/v1/roles`, where the delegation rules
    (a caller hands on only permissions it holds) apply."""

    name = "Role"
    name_plural = "Roles"
    icon = "fa-solid fa-user-shield"
    column_list: ClassVar[Any] = [Role.id, Role.name, Role.description, Role.created_at]
    column_searchable_list: ClassVar[Any] = [Role.name]
    can_create = False
    can_edit = False
    permissions = (ROLE_READ.name,)


class AuditEventAdmin(AdminView, model=AuditEvent):
    """The audit log, read-only (no create, edit or delete: rows leave only by retention)."""

    name = "Audit event"
    name_plural = "Audit events"
    icon = "fa-solid fa-clipboard-list"
    column_list: ClassVar[Any] = [
        AuditEvent.id,
        AuditEvent.created_at,
        AuditEvent.kind,
        AuditEvent.outcome,
        AuditEvent.reason,
        AuditEvent.actor_id,
        AuditEvent.target_type,
        AuditEvent.target_id,
        AuditEvent.ip,
    ]
    column_details_list: ClassVar[Any] = [
        *column_list,
        AuditEvent.target_user_id,
        AuditEvent.user_agent,
        AuditEvent.request_id,
        AuditEvent.data,
    ]
    column_searchable_list: ClassVar[Any] = [AuditEvent.kind, AuditEvent.ip]
    column_default_sort: ClassVar[Any] = [(AuditEvent.id, True)]
    can_create = False
    can_edit = False
    permissions = (AUDIT_READ.name,)


VIEWS: list[type[AdminView]] = [
    UserAdmin,
    TierAdmin,
    RateLimitAdmin,
    ApiKeyAdmin,
    RoleAdmin,
    AuditEventAdmin,
]


def views() -> list[type[AdminView]]:
    """The views to mount: the session rows only exist with the database session store."""
    if settings.SESSION_BACKEND == "database":
        return [*VIEWS, SessionAdmin]
    return list(VIEWS)
