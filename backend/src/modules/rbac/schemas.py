"""Request and response shapes of roles and permissions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from src.modules.common.permissions import MAX_NAME_LENGTH, NAME_PATTERN
from src.modules.rbac.registry import REGISTRY

# Like a tier's name: ASCII letters, digits, "_", " ", "." and "-", at least one not a space;
# stripped after the checks.
RoleName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_ .-]*[A-Za-z0-9_.-][A-Za-z0-9_ .-]*$"
    ),
    AfterValidator(str.strip),
]
# Any text but control characters (which no database column should hold).
RoleDescription = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
# A well-formed permission name (so a refusal that names it echoes nothing but such a name).
# The schema lists the registry's names (`enum`), so a client, or a fuzzer, knows exactly what
# is accepted; the service refuses any other with a 422 naming it.
PermissionName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=NAME_PATTERN),
    Field(json_schema_extra={"enum": sorted(REGISTRY)}),
]
PermissionNames = Annotated[list[PermissionName], Field(max_length=200)]


class PermissionRead(BaseModel):
    name: str
    description: str


class MyPermissions(BaseModel):
    """The caller's effective permissions: every registered one for a superuser."""

    is_superuser: bool
    permissions: list[str]


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RoleName
    description: RoleDescription = ""
    permissions: PermissionNames = Field(default_factory=list)


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: RoleName | None = None
    description: RoleDescription | None = None


class RolePermissionsUpdate(BaseModel):
    """The role's whole new set of permissions (it replaces the current one)."""

    model_config = ConfigDict(extra="forbid")

    permissions: PermissionNames


class RoleRead(BaseModel):
    id: int
    name: str
    description: str
    permissions: list[str]
    created_at: datetime
