"""The `Permission` type every slice declares its permissions with.

A slice that guards a route declares its permissions in its own `permissions.py` as typed
constants (`USER_READ = Permission("user.read", "...")`) plus a `PERMISSIONS` tuple of them;
`src.modules.rbac.registry` collects every slice's tuple into the one registry, which is what
`GET /api/v1/permissions` lists and what a role may hold. Routes guard with
`require_permissions(USER_READ)` (`src.modules.auth.dependencies`).

A permission is its name (`<slice>.<action>`, lower case): that is what is stored in
`role_permissions` and carried in `Principal.permissions`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

NAME_PATTERN: Final = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
MAX_NAME_LENGTH: Final = 100
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class Permission:
    """One thing a caller may be allowed to do: a dotted name and what it allows."""

    name: str
    description: str

    def __post_init__(self) -> None:
        # The name is stored and aggregated as text (comma-separated on the hot path), so it
        # is kept to a strict alphabet.
        if len(self.name) > MAX_NAME_LENGTH or not _NAME.match(self.name):
            raise ValueError(f"invalid permission name {self.name!r}")

    def __str__(self) -> str:
        return self.name
