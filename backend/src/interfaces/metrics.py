"""`/metrics` for Prometheus.

Open in local/development; with `METRICS_TOKEN` set it needs `Authorization: Bearer <token>`;
in production without a token it is not served here at all (use `METRICS_PORT`, a separate
listener that stays off the public network).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from src.infrastructure.config import settings
from src.infrastructure.observability.metrics import render
from src.modules.common.exceptions import NotAuthenticatedError, ResourceNotFoundError

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if not settings.METRICS_ENABLED:
        raise ResourceNotFoundError("Not Found")
    token = settings.METRICS_TOKEN
    if token:
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.get_secret_value().encode()):
            raise NotAuthenticatedError("A valid metrics token is required")
    elif settings.is_production:
        raise ResourceNotFoundError("Not Found")
    body, content_type = render()
    return Response(body, media_type=content_type)
