"""The one registry of permissions: every slice's `permissions.PERMISSIONS`, by name.

Collected explicitly (an import per slice) rather than by import side effects, so the registry
is complete whatever was imported first, and a name declared twice fails at import time.
A slice adding permissions adds its module to `_SLICES`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final

from src.modules.audit import permissions as audit_permissions
from src.modules.auth import permissions as auth_permissions
from src.modules.common.permissions import Permission
from src.modules.rate_limit import permissions as rate_limit_permissions
from src.modules.rbac import permissions as rbac_permissions
from src.modules.tier import permissions as tier_permissions
from src.modules.user import permissions as user_permissions

_SLICES = (
    user_permissions,
    tier_permissions,
    rate_limit_permissions,
    auth_permissions,
    rbac_permissions,
    audit_permissions,
)


def _collect(declared: Iterable[Permission]) -> Mapping[str, Permission]:
    found: dict[str, Permission] = {}
    for permission in declared:
        if permission.name in found:
            raise ValueError(f"permission {permission.name!r} is declared twice")
        found[permission.name] = permission
    return MappingProxyType(dict(sorted(found.items())))


REGISTRY: Final = _collect(p for module in _SLICES for p in module.PERMISSIONS)
"""Every permission, sorted by name."""


def unknown(names: Iterable[str]) -> list[str]:
    """The names among `names` that no slice declares, sorted."""
    return sorted({name for name in names if name not in REGISTRY})
