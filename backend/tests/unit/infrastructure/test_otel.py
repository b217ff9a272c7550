"""`FASTAPI_TELEMETRY`: FastAPI's native OpenTelemetry runs when OpenTelemetry is set up (or
forced on), and costs nothing per request otherwise."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import _logs, metrics, trace

from src.infrastructure.config import settings
from src.infrastructure.observability.otel import OFF, decide

pytestmark = pytest.mark.unit


class RecordingTracer(trace.NoOpTracer):
    def __init__(self) -> None:
        self.spans = 0

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        self.spans += 1
        return super().start_span(*args, **kwargs)


class RecordingTracerProvider(trace.TracerProvider):
    """Stands for an SDK's provider: counts the spans started through it."""

    def __init__(self) -> None:
        self.tracer = RecordingTracer()

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return self.tracer


class ProxyTracerProvider(trace.TracerProvider):
    """A vendor's own proxy: the API's class name, in another module."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return trace.NoOpTracer()


@pytest.fixture
def nothing_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's placeholders, whatever this test process installed before."""
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(metrics, "get_meter_provider", metrics.NoOpMeterProvider)
    monkeypatch.setattr(_logs, "get_logger_provider", _logs.NoOpLoggerProvider)


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch, nothing_set_up: None) -> RecordingTracerProvider:
    """An SDK tracer provider installed globally (as `opentelemetry-instrument` does)."""
    provider = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return provider


def spans_made(enabled: bool, provider: RecordingTracerProvider) -> int:
    app = FastAPI(telemetry={} if enabled else OFF.copy())

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/ping").json() == {"ok": True}
    return provider.tracer.spans


def test_off_and_on_are_what_they_say(nothing_set_up):
    assert decide("off", environ={"OTEL_SERVICE_NAME": "api"}) == (False, "FASTAPI_TELEMETRY=off")
    assert decide("on", environ={}) == (True, "FASTAPI_TELEMETRY=on")


def test_auto_is_off_when_nothing_is_set_up(nothing_set_up):
    enabled, why = decide("auto", environ={"FASTAPI_TELEMETRY": "auto", "PATH": "/usr/bin"})
    assert not enabled
    assert "FASTAPI_TELEMETRY=on" in why  # the way to turn it on, in the startup line


@pytest.mark.parametrize(
    ("environ", "why"),
    [
        ({"OTEL_SERVICE_NAME": "api"}, "OTEL_SERVICE_NAME is set"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT is set"),
        ({"FASTAPI_OTEL_AUTO_CONFIGURE": "true"}, "FASTAPI_OTEL_AUTO_CONFIGURE=true"),
    ],
)
def test_auto_is_on_when_the_environment_asks_for_opentelemetry(nothing_set_up, environ, why):
    assert decide("auto", environ=environ) == (True, why)


def test_auto_stays_off_when_the_sdk_is_disabled(nothing_set_up):
    environ = {"OTEL_SDK_DISABLED": "true", "OTEL_SERVICE_NAME": "api"}
    assert decide("auto", environ=environ) == (False, "OTEL_SDK_DISABLED=true")


def test_auto_is_on_when_an_sdk_provider_is_installed(sdk):
    enabled, why = decide("auto", environ={})
    assert enabled
    assert why.endswith("RecordingTracerProvider is installed")
    assert spans_made(enabled, sdk) > 0


def test_a_vendor_proxy_is_a_provider_not_a_placeholder(nothing_set_up, monkeypatch):
    monkeypatch.setattr(trace, "get_tracer_provider", ProxyTracerProvider)
    assert decide("auto", environ={})[0]


def test_off_never_asks_the_sdk_for_a_tracer(sdk):
    assert spans_made(False, sdk) == 0


def test_on_traces_requests_through_the_installed_provider(sdk):
    assert spans_made(True, sdk) >= 3  # one per request at least


@pytest.mark.parametrize(("mode", "traced"), [("on", True), ("off", False)])
def test_the_app_follows_the_setting_and_says_so_at_startup(sdk, monkeypatch, caplog, mode, traced):
    from src.interfaces.main import create_app

    monkeypatch.setattr(settings, "FASTAPI_TELEMETRY", mode)
    with caplog.at_level(logging.INFO, logger="src.startup"), TestClient(create_app()) as client:
        assert client.get("/health").status_code == 200
    assert (sdk.tracer.spans > 0) is traced
    expected = f"FastAPI OpenTelemetry {'on' if traced else 'off'} (FASTAPI_TELEMETRY={mode})"
    assert expected in caplog.messages
