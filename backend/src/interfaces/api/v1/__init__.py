"""Version 1 of the HTTP API: router aggregation only, no logic."""

from fastapi import APIRouter

from src.modules.auth.routes import router as auth_router
from src.modules.tier.routes import router as tier_router
from src.modules.user.routes import router as user_router

router = APIRouter(prefix="/api/v1")
router.include_router(auth_router)
router.include_router(user_router)
router.include_router(tier_router)
