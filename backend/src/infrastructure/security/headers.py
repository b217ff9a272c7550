"""Security response headers: which ones every HTTP response carries.

Added by the edge middleware (`src/interfaces/edge.py`) to every response, unless the route
already set the same header.
"""

from __future__ import annotations

# The API answers JSON only; the docs pages load the Swagger UI and ReDoc assets the app
# serves itself (`src/interfaces/docs.py`): no other origin, and no inline script unless the
# page allows its own by hash (`docs_csp`). Inline styles stay: both UIs set them at run time.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
_DOCS_SCRIPT_SRC = "script-src 'self'"
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    f"{_DOCS_SCRIPT_SRC}; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc", "/admin")
HSTS = "max-age=63072000; includeSubDomains"


def security_headers(*, hsts: bool) -> list[tuple[bytes, bytes]]:
    """The static headers (raw, lower-case names), HSTS when the site is served over TLS."""
    headers = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"strict-origin-when-cross-origin"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", HSTS.encode()))
    return headers


def docs_csp(script_sources: list[str]) -> str:
    """The docs CSP that also lets these scripts run (e.g. `'sha256-...'` of an inline one)."""
    return DOCS_CSP.replace(_DOCS_SCRIPT_SRC, " ".join([_DOCS_SCRIPT_SRC, *script_sources]), 1)


def content_security_policy(path: str) -> bytes:
    """The CSP for a path: the docs pages need their scripts and styles; the API needs none."""
    return (DOCS_CSP if path.startswith(DOCS_PATHS) else API_CSP).encode()
