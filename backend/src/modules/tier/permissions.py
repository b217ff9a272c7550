"""What the tier slice guards with permissions (see `src.modules.common.permissions`)."""

from __future__ import annotations

from typing import Final

from src.modules.common.permissions import Permission

TIER_MANAGE: Final = Permission(
    "tier.manage", "Create, rename and delete tiers (`POST`/`PATCH`/`DELETE /api/v1/tiers`)"
)

PERMISSIONS: Final = (TIER_MANAGE,)
