"""The app's lifespan takes what is alive at startup out of the garbage collector's scans, so a
full collection while serving does not walk every module, route and schema again (a ~120 ms
pause of the event loop, measured during a login flood), and gives it back at shutdown."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from src.interfaces.main import create_app

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
