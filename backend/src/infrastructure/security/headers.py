"""Security response headers: which ones every HTTP response carries.

Added by the edge middleware (`src/interfaces/edge.py`) to every response, unless the route
already set the same header.
"""

from __future__ import annotations

# The API answers JSON only; the docs pages load Swagger/ReDoc assets from their CDN.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "worker-src 'self' blob:; frame-ancestors 'none'"
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


def content_security_policy(path: str) -> bytes:
    """The CSP for a path: the docs pages need their scripts and styles; the API needs none."""
    return (DOCS_CSP if path.startswith(DOCS_PATHS) else API_CSP).encode()
