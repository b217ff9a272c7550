from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

# ASCII letters, digits, "_", " ", "." and "-", at least one not a space; stripped after the checks,
# so the JSON schema's bounds are the server's.
_CHAR, _NOT_SPACE = "[A-Za-z0-9_ .-]", "[A-Za-z0-9_.-]"
TierName = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=50, pattern=r"^[A-Za-z0-9_ .-]*[A-Za-z0-9_.-][A-Za-z0-9_ .-]*$"
    ),
    AfterValidator(str.strip),
]


class TierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TierName


class TierUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TierName


class TierRead(BaseModel):
    id: int
    name: str
    created_at: datetime
