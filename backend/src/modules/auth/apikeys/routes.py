"""`/api/v1/api-keys`: the caller's API keys. Session-only: a key cannot manage keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status

from src.infrastructure.database.session import DBSession
from src.modules.audit.dependencies import Audit
from src.modules.auth.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, ApiKeyUpdate
from src.modules.auth.apikeys.service import ApiKeyService
from src.modules.auth.dependencies import CurrentSession
from src.modules.common.schemas import Page, Pagination, PathId, responses

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


@router.post("", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
async def create_api_key(
    payload: ApiKeyCreate, context: CurrentSession, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Make a key. The response carries the full key (`key`): the only time it is shown.
    Send it as `X-API-Key`."""
    return await ApiKeyService().create(
        owner=context.principal, payload=payload.model_dump(), db=db, audit=audit
    )


@router.get("", response_model=Page[ApiKeyRead])
async def list_api_keys(
    context: CurrentSession, pagination: Pagination, db: DBSession
) -> dict[str, Any]:
    """Your keys, newest first (revoked ones included, for audit)."""
    return await ApiKeyService().list(user_id=context.principal.id, params=pagination, db=db)


@router.get("/{key_id}", response_model=ApiKeyRead)
async def get_api_key(key_id: PathId, context: CurrentSession, db: DBSession) -> dict[str, Any]:
    """One of your keys (404 for anyone else's)."""
    return await ApiKeyService().get(user_id=context.principal.id, key_id=key_id, db=db)


@router.patch(
    "/{key_id}",
    response_model=ApiKeyRead,
    responses=responses(409, e409="The key is revoked"),
)
async def update_api_key(
    key_id: PathId, payload: ApiKeyUpdate, context: CurrentSession, db: DBSession, audit: Audit
) -> dict[str, Any]:
    """Rename, narrow the scopes, bring the expiry forward or deactivate (`is_active: false`).
    Never widens: more scopes, a later or no expiry, or reactivating are a 422."""
    return await ApiKeyService().update(
        user_id=context.principal.id,
        key_id=key_id,
        payload=payload.model_dump(exclude_unset=True),
        db=db,
        audit=audit,
    )


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: PathId, context: CurrentSession, db: DBSession, audit: Audit
) -> None:
    """Revoke the key for good; it stays listed (with `revoked_at`) for audit."""
    await ApiKeyService().revoke(user_id=context.principal.id, key_id=key_id, db=db, audit=audit)
