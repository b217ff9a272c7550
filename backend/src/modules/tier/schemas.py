from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

TierName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[\w .-]+$"),
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
