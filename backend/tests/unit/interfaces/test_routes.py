"""Every dependency and endpoint of the API runs on the event loop: FastAPI runs a plain `def`
in a worker thread, a thread hop per request (seen in the list route's profile)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from src.interfaces.main import app

pytestmark = pytest.mark.unit


def _calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _calls(sub)


def _is_async(call: Any) -> bool:
    call = inspect.unwrap(call)
    target = call if inspect.isfunction(call) or inspect.ismethod(call) else call.__call__
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def test_no_route_runs_a_dependency_or_endpoint_in_a_thread():
    sync: set[str] = set()
    routes = [c.original_route for c in iter_route_contexts(app.routes)]
    api_routes = [route for route in routes if isinstance(route, APIRoute)]
    assert len(api_routes) > 20
    for route in api_routes:
        for call in (route.endpoint, *_calls(route.dependant)):
            if call is not None and not _is_async(call):
                sync.add(f"{route.path}: {getattr(call, '__qualname__', call)}")
    assert not sync, f"sync (threadpool) dependencies or endpoints: {sorted(sync)}"
