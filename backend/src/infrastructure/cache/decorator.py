"""`@cache`: cache what an async function (a route) returns, keyed by its arguments.

```python
@router.get("/{username}", response_model=UserPublic)
@cache("user:{username}", ttl=300)
async def read_profile(username: str, db: DBSession) -> dict[str, Any]: ...

@router.get("", response_model=Page[TierRead])
@cache("tiers:{pagination.page}:{pagination.items_per_page}", tags=["tiers"])
async def list_tiers(pagination: Pagination, db: DBSession) -> dict[str, Any]: ...

# after a write committed:
await invalidate("user:alice")   # one key
await invalidate("tiers")        # every entry tagged "tiers"
```

- Put `@cache` below the router decorator. FastAPI still sees the function's own signature
  (parameters, dependencies, annotations), so the route is unchanged to its callers.
- The value must be JSON-serialisable (dicts, lists, pydantic models, datetimes, ...). A hit
  returns its JSON form (a datetime comes back as its ISO string), which the route's
  `response_model` validates and serialises exactly as the original.
- Exceptions (a 404, a 403) are never cached.
- Per-caller responses: put the caller in the key, e.g. `"me:{user[id]}"` for a route taking
  `user: CurrentUser`. A key that leaves out an argument the response depends on serves one
  caller's data to another.
- Settings are read on every call: `CACHE_ENABLED=false` makes the decorator a plain call
  (and `invalidate` a no-op); `CACHE_BACKEND` and `CACHE_REDIS_*` select the store;
  `CACHE_DEFAULT_TTL_SECONDS` is the TTL when none is given; `CACHE_KEY_PREFIX` prefixes
  every key in the store.

Why not cashews' own `@cache`: its keys come from cashews' template language, its tags
are sets of keys (racy with concurrent writes) and its early/locked variants are separate
decorators. The route-facing behaviour here (templates checked at import time, versioned
invalidation, one computation per miss, failing open) is ours; storage is cashews'.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

from src.infrastructure.cache.keys import KeyBuilder, KeySpec
from src.infrastructure.cache.manager import get_cache_manager
from src.infrastructure.config import settings

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def cache(
    key: KeySpec, *, ttl: float | None = None, tags: Sequence[KeySpec] = ()
) -> Callable[[F], F]:
    """Cache an async function's result under `key` for `ttl` seconds.

    `key` and each of `tags` are templates naming the function's parameters
    (`"user:{username}"`) or functions of them (`lambda username: ...`). Invalidating the
    key, or any tag, makes the entry a miss in every process.
    """
    if ttl is not None and ttl <= 0:
        raise ValueError("ttl must be positive (seconds); leave it out for the default")
    if isinstance(tags, str):
        raise TypeError("tags is a list of tags, e.g. tags=['tiers']")

    def decorate(func: F) -> F:
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"@cache needs an async function, got {func!r}")
        signature = inspect.signature(func)
        key_builder = KeyBuilder(key, signature.parameters)
        tag_builders = tuple(KeyBuilder(tag, signature.parameters) for tag in tags)
        if ttl is not None:
            get_cache_manager().register_ttl(ttl)
        # FastAPI calls an endpoint with every parameter by keyword: those keywords are the
        # arguments as `bind` would name them, without binding (a fiftieth of a cache hit).
        by_name = {inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY}
        names = (
            frozenset(signature.parameters)
            if all(parameter.kind in by_name for parameter in signature.parameters.values())
            else None
        )

        @functools.wraps(func)
        async def cached(*args: Any, **kwargs: Any) -> Any:
            if not settings.CACHE_ENABLED:
                return await func(*args, **kwargs)
            if not args and names is not None and kwargs.keys() == names:
                arguments: dict[str, Any] = kwargs
            else:
                bound = signature.bind(*args, **kwargs)
                bound.apply_defaults()
                arguments = bound.arguments
            return await get_cache_manager().fetch(
                key_builder.build(arguments),
                tuple(builder.build(arguments) for builder in tag_builders),
                ttl if ttl is not None else settings.CACHE_DEFAULT_TTL_SECONDS,
                lambda: func(*args, **kwargs),
            )

        return cast(F, cached)

    return decorate


async def invalidate(*keys_or_tags: str) -> None:
    """Drop every cached entry whose key, or one of whose tags, is named; call it after the
    write committed. Never raises for a backend failure (the names are retried later)."""
    if settings.CACHE_ENABLED:
        await get_cache_manager().invalidate(*keys_or_tags)


async def reset_cache_backend(*, clear: bool = False) -> None:
    """Close the stores and forget all cache state; the next call rebuilds them from the
    settings. `clear=True` first deletes every cached entry (tests; a cache flush)."""
    await get_cache_manager().reset(clear=clear)
