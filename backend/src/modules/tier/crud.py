from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD

from src.modules.tier.models import Tier

crud_tiers: FastCRUD[Tier, Any, Any, Any, Any, Any] = FastCRUD(Tier)
