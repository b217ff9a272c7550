"""The client's IP address, trusting exactly `TRUSTED_PROXY_HOPS` reverse proxies.

Each proxy appends the address it received the request from to X-Forwarded-For, so with N
trusted hops the client is the N-th entry from the right. Entries further left are whatever the
client sent and are ignored: a spoofed header gains nothing.
"""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

from src.infrastructure.config import settings


def client_ip(request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    hops = settings.TRUSTED_PROXY_HOPS
    if hops <= 0:
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    entries = [entry.strip() for entry in forwarded.split(",") if entry.strip()]
    # Fewer entries than trusted hops: the request skipped a proxy, so none can be trusted.
    candidate = entries[-hops] if len(entries) >= hops else peer
    return candidate if _is_ip(candidate) else peer


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
