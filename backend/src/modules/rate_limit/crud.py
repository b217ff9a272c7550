from __future__ import annotations

from typing import Any

from fastcrud import FastCRUD

from src.modules.rate_limit.models import RateLimit

crud_rate_limits: FastCRUD[RateLimit, Any, Any, Any, Any, Any] = FastCRUD(RateLimit)
