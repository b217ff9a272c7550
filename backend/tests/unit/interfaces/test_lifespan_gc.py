"""The app's lifespan tunes the garbage collector for serving and gives it back at shutdown:
what is alive at startup is taken out of the collector's scans, so a full collection while
serving does not walk every module, route and schema again (a ~120 ms pause of the event loop,
measured during a login flood), and the young generation's threshold is raised
(`GC_YOUNG_THRESHOLD`), so the objects of the requests in flight no longer set off a collection
every few requests and a full one about once a second."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from src.infrastructure.config import settings
from src.infrastructure.config.settings import Settings
from src.infrastructure.ratelimit import limiter as limiter_module
from src.interfaces import main
from src.interfaces.main import create_app, garbage_collector_for_serving

pytestmark = pytest.mark.unit


def test_startup_freezes_what_is_alive_and_shutdown_unfreezes_it():
    app = create_app()
    gc.collect()  # what earlier tests left behind is not alive
    alive = len(gc.get_objects())
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert gc.get_freeze_count() >= alive * 0.9  # the app, the modules: nearly all of it
        assert len(gc.get_objects()) < alive * 0.1  # what a full collection still walks
        assert client.get("/health").status_code == 200
    assert gc.get_freeze_count() == 0


def test_the_young_threshold_is_raised_while_serving_and_restored_after(monkeypatch):
    before = gc.get_threshold()
    monkeypatch.setattr(settings, "GC_YOUNG_THRESHOLD", 12_345)
    with TestClient(create_app()) as client:
        assert gc.get_threshold() == (12_345, *before[1:])
        assert client.get("/health").status_code == 200
    assert gc.get_threshold() == before


def test_zero_keeps_pythons_threshold():
    before = gc.get_threshold()
    with garbage_collector_for_serving(0):
        assert gc.get_threshold() == before
    assert gc.get_threshold() == before


def test_the_collector_is_restored_when_serving_ends_with_an_error():
    before = gc.get_threshold()

    def serve_then_fail() -> None:
        with garbage_collector_for_serving(50_000):
            assert gc.get_threshold()[0] == 50_000
            raise RuntimeError("shutdown by an error")

    with pytest.raises(RuntimeError):
        serve_then_fail()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_request_cycle_is_still_collected_while_serving():
    """Raising the threshold defers collections; it does not turn them off: a reference cycle
    that a request leaves behind is freed once the young generation fills."""

    class Node:
        pass

    with garbage_collector_for_serving(1_000):
        gc.collect()
        collected: list[int] = []

        def count(phase: str, info: dict[str, int]) -> None:
            if phase == "stop":
                collected.append(info["collected"])

        gc.callbacks.append(count)
        try:
            for _ in range(2_000):  # cycles, each two objects: past the threshold
                a, b = Node(), Node()
                a.other, b.other = b, a  # type: ignore[attr-defined]
                del a, b
        finally:
            gc.callbacks.remove(count)
    assert sum(collected) > 0


class _Engine:
    """A stand-in for the engine: an object the garbage collector tracks."""


def test_the_engine_and_the_limiter_are_built_at_startup_and_frozen_with_it(monkeypatch):
    """Not by the first request, which would wait for them (the engine imports its driver)."""
    engines: list[_Engine] = []
    monkeypatch.setattr(main, "get_engine", lambda: engines.append(_Engine()))
    limiter_module.get_rate_limiter.cache_clear()  # as in a fresh process (tests share one)
    try:
        with TestClient(create_app()):
            assert len(engines) == 1
            assert limiter_module.get_rate_limiter.cache_info().currsize == 1
            limiter = limiter_module.get_rate_limiter()
            built = (engines[0], limiter)
            assert all(gc.is_tracked(thing) for thing in built)
            assert not any(alive is thing for alive in gc.get_objects() for thing in built)
    finally:
        limiter_module.get_rate_limiter.cache_clear()


def test_rate_limits_off_build_no_limiter(monkeypatch):
    monkeypatch.setattr(settings, "RATE_LIMIT_ENABLED", False)
    limiter_module.get_rate_limiter.cache_clear()
    with TestClient(create_app()):
        assert limiter_module.get_rate_limiter.cache_info().currsize == 0


def test_a_threshold_python_refuses_is_refused_as_a_setting():
    with pytest.raises(ValueError, match="GC_YOUNG_THRESHOLD"):
        Settings(GC_YOUNG_THRESHOLD=10**12)
