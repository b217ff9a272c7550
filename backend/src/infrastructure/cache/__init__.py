"""`@cache` for async routes, on the in-memory or Redis backend (`CACHE_BACKEND`).

`from src.infrastructure.cache import cache, invalidate`: see `decorator.py` for usage,
`manager.py` for invalidation, stampede protection and failing open, `backends.py` for the
storage (cashews).
"""

from src.infrastructure.cache.decorator import cache, invalidate, reset_cache_backend
from src.infrastructure.cache.keys import KeySpec

__all__ = ["KeySpec", "cache", "invalidate", "reset_cache_backend"]
