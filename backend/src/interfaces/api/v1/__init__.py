"""Version 1 of the HTTP API: router aggregation only, no logic."""

from fastapi import APIRouter, Depends

from src.modules.auth.routes import router as auth_router
from src.modules.rate_limit.dependencies import enforce_rate_limit
from src.modules.rate_limit.routes import router as rate_limit_router
from src.modules.tier.routes import router as tier_router
from src.modules.user.routes import router as user_router

# Every API route is rate limited before its own dependencies and endpoint (and any @cache).
router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(enforce_rate_limit)],
    responses={429: {"description": "Rate limit exceeded: see Retry-After and X-RateLimit-*"}},
)
router.include_router(auth_router)
router.include_router(user_router)
router.include_router(tier_router)
router.include_router(rate_limit_router)
