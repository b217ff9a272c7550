"""Data access of the user slice: `crud_users` (FastCRUD) for everything, and the prebuilt Core
statements of the hot reads (a public profile, a page of users), which run on every request of
those routes and so skip FastCRUD's per-call statement building (see
`src.infrastructure.database.statements`)."""

from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD
from sqlalchemy import bindparam, func, select

from src.infrastructure.database.statements import prebuilt
from src.modules.user.models import User

crud_users: FastCRUD[User, Any, Any, Any, Any, Any] = FastCRUD(User)

# The columns of `UserRead` (what a user and superusers see).
READ_COLUMNS = (
    User.id,
    User.name,
    User.username,
    User.email,
    User.is_superuser,
    User.tier_id,
    User.is_verified,
    User.created_at,
)

PUBLIC_PROFILE = prebuilt(
    select(User.username, User.name, User.created_at).where(
        User.username == bindparam("username"), User.is_deleted.is_(False)
    )
)

# One round trip for a page and the total: the window count rides along on every row.
USERS_PAGE = prebuilt(
    select(*READ_COLUMNS, func.count().over().label("total_count"))
    .where(User.is_deleted.is_(False))
    .order_by(User.id)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
# Only for a page past the end, where no row carries the total.
USERS_COUNT = prebuilt(select(func.count()).select_from(User).where(User.is_deleted.is_(False)))
