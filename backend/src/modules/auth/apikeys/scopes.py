"""What an API key may do, on top of its owner's permissions (roles: `src.modules.rbac`).

- `read`: safe methods (GET, HEAD, OPTIONS) on the routes that accept a key; every key holds it;
- `write`: unsafe methods (POST, PUT, PATCH, DELETE) on the routes that accept a key (403
  without it).

A session holds every scope; a key holds the ones it was made with (a subset of its owner's,
only ever narrowed). What the key's requests may then do is what its owner's permissions allow,
read at each request: scopes narrow methods, never widen permissions.
"""

from __future__ import annotations

from typing import Final

API_KEY_SCOPES: Final = frozenset({"read", "write"})
READ: Final = "read"
WRITE: Final = "write"
