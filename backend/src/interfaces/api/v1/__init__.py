"""Version 1 of the HTTP API: router aggregation only, no logic.

`include_api_v1(app)` mounts every slice's router under `/api/v1`, each rate limited before its
own dependencies and endpoint (and any `@cache`). Each slice router is included into the app
directly, with the prefix and the dependency, rather than through an intermediate `/api/v1`
router: FastAPI matches included routers level by level, so every request saves one level.

Order decides which route wins where two match the same path (the first included), and it
is the order of the OpenAPI document. Slices share no path prefix except users and user roles,
and tiers and their rate limits, which keep their relative order. The slices serving the hot
reads (users, tiers) come first: the route index (`infrastructure/route_index.py`) finds a
route by path whatever its position, but a request it hands to FastAPI's router (a 404, a
405) is matched by trying the routes in this order.
"""

from fastapi import APIRouter, Depends, FastAPI

from src.modules.audit.routes import router as audit_router
from src.modules.auth.apikeys.routes import router as api_keys_router
from src.modules.auth.routes import api_router as auth_router
from src.modules.rate_limit.dependencies import enforce_rate_limit
from src.modules.rate_limit.routes import router as rate_limit_router
from src.modules.rbac.routes import permissions_router, roles_router, user_roles_router
from src.modules.tier.routes import router as tier_router
from src.modules.user.routes import router as user_router

PREFIX = "/api/v1"


def routers() -> tuple[APIRouter, ...]:
    """Every slice's router, as configured now (auth's OAuth routes exist only when a provider
    is configured)."""
    return (
        user_router,
        tier_router,
        user_roles_router,
        rate_limit_router,
        auth_router(),
        api_keys_router,
        permissions_router,
        roles_router,
        audit_router,
    )


def include_api_v1(app: FastAPI) -> None:
    for router in routers():
        app.include_router(
            router,
            prefix=PREFIX,
            # Its 429 is documented on every route from this dependency (interfaces/openapi.py).
            dependencies=[Depends(enforce_rate_limit)],
        )
