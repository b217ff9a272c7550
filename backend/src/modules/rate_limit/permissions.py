"""What the rate-limit slice guards with permissions (see `src.modules.common.permissions`)."""

from __future__ import annotations

from typing import Final

from src.modules.common.permissions import Permission

RATELIMIT_MANAGE: Final = Permission(
    "ratelimit.manage",
    "Read and change the tiers' rate-limit rules (`/api/v1/tiers/{name}/rate-limits`)",
)

PERMISSIONS: Final = (RATELIMIT_MANAGE,)
