"""API keys: create (the key shown once), list, get, narrow, revoke; and `resolve_api_key`,
the hot path of every `X-API-Key` request.

A key is `fk_<prefix>_<secret>`: the 8-character prefix finds the row (unique index), the
stored `HMAC(SECRET_KEY, "apikey", key)` is compared in constant time. Resolving is one
round trip (the key joined to its owner, selecting the `Principal`'s columns, the owner's
permissions included: a key acts with its owner's permissions, its scopes limiting the methods);
`last_used_at`/`last_used_ip` are written at most once per `TOUCH_INTERVAL` per key.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from src.infrastructure.auth.tokens import api_key_matches, hash_api_key
from src.infrastructure.database.models import UTCDateTime, utcnow
from src.infrastructure.database.statements import fetch_row, prebuilt
from src.modules.audit.context import AuditContext
from src.modules.audit.kinds import AuditKind, TargetType
from src.modules.audit.service import Target, record
from src.modules.auth.apikeys.models import ApiKey
from src.modules.auth.apikeys.scopes import API_KEY_SCOPES
from src.modules.auth.sessions.base import PRINCIPAL_COLUMNS, Principal
from src.modules.common.exceptions import (
    ConflictError,
    InvalidValueError,
    ResourceNotFoundError,
)
from src.modules.common.schemas import PageParams, build_page
from src.modules.user.models import User

KEY_PREFIX: Final = "fk"
PREFIX_LENGTH: Final = 8
TOUCH_INTERVAL: Final = timedelta(minutes=1)
_MAX_KEY_LENGTH: Final = 128

_COLUMNS = (
    ApiKey.id,
    ApiKey.name,
    ApiKey.prefix,
    ApiKey.scopes,
    ApiKey.is_active,
    ApiKey.created_at,
    ApiKey.expires_at,
    ApiKey.last_used_at,
    ApiKey.last_used_ip,
    ApiKey.revoked_at,
)

# Built once: the hot path binds values only.
_RESOLVE = prebuilt(
    select(ApiKey.id, ApiKey.key_hash, ApiKey.scopes, ApiKey.last_used_at, *PRINCIPAL_COLUMNS)
    .join(User, User.id == ApiKey.user_id)
    .where(
        ApiKey.prefix == bindparam("prefix"),
        ApiKey.revoked_at.is_(None),
        ApiKey.is_active.is_(True),
        or_(
            ApiKey.expires_at.is_(None),
            ApiKey.expires_at > bindparam("now", type_=UTCDateTime()),
        ),
        User.is_deleted.is_(False),
    )
)
_TOUCH = (
    update(ApiKey)
    .where(
        ApiKey.id == bindparam("key_id"),
        or_(
            ApiKey.last_used_at.is_(None),
            ApiKey.last_used_at <= bindparam("cutoff", type_=UTCDateTime()),
        ),
    )
    .values(last_used_at=bindparam("now", type_=UTCDateTime()), last_used_ip=bindparam("ip"))
)


def _split(key: str) -> str | None:
    """The lookup prefix of a well-formed key, else None."""
    if len(key) > _MAX_KEY_LENGTH:
        return None
    marker, _, rest = key.partition("_")
    prefix, _, secret = rest.partition("_")
    if marker != KEY_PREFIX or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    return prefix


async def resolve_api_key(db: AsyncSession, key: str, *, ip: str | None) -> Principal | None:
    """The owner of a live key (`via="apikey"`, the key's scopes), or None: unknown, wrong,
    revoked, deactivated, expired, or its owner deleted."""
    prefix = _split(key)
    if prefix is None:
        return None
    now = utcnow()
    row = await fetch_row(db, _RESOLVE, {"prefix": prefix, "now": now})
    if row is None:
        return None
    key_id, key_hash, scopes, last_used_at, *values = row
    if not api_key_matches(key, key_hash):
        return None
    if last_used_at is None or now - last_used_at >= TOUCH_INTERVAL:
        await (await db.connection()).execute(
            _TOUCH,
            {"key_id": key_id, "now": now, "cutoff": now - TOUCH_INTERVAL, "ip": ip},
        )
        await db.commit()
    # The owner's permissions (same statement); the key's scopes still gate the methods.
    return Principal.from_row(values, via="apikey", scopes=frozenset(scopes))


def held_scopes(principal: Principal) -> frozenset[str]:
    """What `principal` may hand on to a key: a session holds every scope."""
    return API_KEY_SCOPES if principal.via == "session" else principal.scopes


class ApiKeyService:
    async def create(
        self, *, owner: Principal, payload: dict[str, Any], db: AsyncSession, audit: AuditContext
    ) -> dict[str, Any]:
        scopes = sorted(set(payload["scopes"]))
        if not set(scopes) <= held_scopes(owner):
            raise InvalidValueError("A key cannot hold scopes its owner lacks", field="scopes")
        expires_at: datetime | None = payload.get("expires_at")
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise InvalidValueError("The expiry must be in the future", field="expires_at")
        prefix = secrets.token_hex(PREFIX_LENGTH // 2)
        key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            user_id=owner.id,
            name=payload["name"],
            prefix=prefix,
            key_hash=hash_api_key(key),
            scopes=scopes,
            is_active=True,
            created_at=now,
            expires_at=expires_at,
        )
        db.add(row)
        await db.flush()
        created = await self._read(db, user_id=owner.id, key_id=row.id)
        record(
            db,
            AuditKind.API_KEY_CREATED,
            audit,
            target=_target(row.id, owner.id),
            data={"name": row.name, "prefix": prefix, "scopes": scopes, "expires_at": expires_at},
        )
        await db.commit()
        return created | {"key": key}

    async def list(self, *, user_id: int, params: PageParams, db: AsyncSession) -> dict[str, Any]:
        total = (
            await db.execute(select(func.count()).where(ApiKey.user_id == user_id))
        ).scalar_one()
        rows = await db.execute(
            select(*_COLUMNS)
            .where(ApiKey.user_id == user_id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
            .offset(params.offset)
            .limit(params.items_per_page)
        )
        return build_page([dict(row._mapping) for row in rows], total, params)

    async def get(self, *, user_id: int, key_id: int, db: AsyncSession) -> dict[str, Any]:
        return await self._read(db, user_id=user_id, key_id=key_id)

    async def update(
        self,
        *,
        user_id: int,
        key_id: int,
        payload: dict[str, Any],
        db: AsyncSession,
        audit: AuditContext,
    ) -> dict[str, Any]:
        """Rename, narrow the scopes, bring the expiry forward or deactivate; nothing that
        widens what the key can do (422, nothing written)."""
        current = await self._read(db, user_id=user_id, key_id=key_id)
        if current["revoked_at"] is not None:
            raise ConflictError("This key is revoked")
        values: dict[str, Any] = {}
        if payload.get("name") is not None:
            values["name"] = payload["name"]
        if "scopes" in payload:
            scopes = payload["scopes"]
            if scopes is None or not set(scopes) <= set(current["scopes"]):
                raise InvalidValueError("Scopes can only be narrowed", field="scopes")
            values["scopes"] = sorted(set(scopes))
        if "expires_at" in payload:
            expires_at = payload["expires_at"]
            if expires_at is None or (
                current["expires_at"] is not None and expires_at > current["expires_at"]
            ):
                raise InvalidValueError(
                    "The expiry can only be brought forward", field="expires_at"
                )
            if expires_at <= utcnow():
                raise InvalidValueError("The expiry must be in the future", field="expires_at")
            values["expires_at"] = expires_at
        if "is_active" in payload:
            if payload["is_active"] is not False and not current["is_active"]:
                raise InvalidValueError("A deactivated key stays so", field="is_active")
            if payload["is_active"] is None:
                raise InvalidValueError("Send false to deactivate", field="is_active")
            values["is_active"] = payload["is_active"] and current["is_active"]
        if values:
            await db.execute(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.user_id == user_id)
                .values(**values)
            )
            record(
                db,
                AuditKind.API_KEY_UPDATED,
                audit,
                target=_target(key_id, user_id),
                data={"changes": values},
            )
        updated = await self._read(db, user_id=user_id, key_id=key_id)
        await db.commit()
        return updated

    async def revoke(
        self, *, user_id: int, key_id: int, db: AsyncSession, audit: AuditContext
    ) -> None:
        """Revoke for good (idempotent: revoking again changes nothing and records nothing);
        the row stays for audit."""
        await self._read(db, user_id=user_id, key_id=key_id)
        await _revoke(db, audit, ApiKey.id == key_id, ApiKey.user_id == user_id)
        await db.commit()

    async def revoke_any(
        self, *, key_ids: Sequence[int], db: AsyncSession, audit: AuditContext
    ) -> None:
        """Revoke these keys whoever owns them (the admin panel, `apikey.admin`), in one
        transaction; keys already revoked, or unknown ids, change and record nothing."""
        await _revoke(db, audit, ApiKey.id.in_(key_ids))
        await db.commit()

    async def _read(self, db: AsyncSession, *, user_id: int, key_id: int) -> dict[str, Any]:
        row = (
            await db.execute(
                select(*_COLUMNS).where(ApiKey.id == key_id, ApiKey.user_id == user_id)
            )
        ).first()
        if row is None:
            raise ResourceNotFoundError("No such API key")
        return dict(row._mapping)


async def _revoke(db: AsyncSession, audit: AuditContext, *where: ColumnElement[bool]) -> None:
    """Revoke the live keys matching `where` (the rows stay for audit), one event each."""
    revoked = await db.execute(
        update(ApiKey)
        .where(*where, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow(), is_active=False)
        .returning(ApiKey.id, ApiKey.user_id)
    )
    for key_id, owner_id in revoked.all():
        record(db, AuditKind.API_KEY_REVOKED, audit, target=_target(key_id, owner_id))


def _target(key_id: int, user_id: int) -> Target:
    return Target.of(TargetType.API_KEY, key_id, user_id=user_id)
