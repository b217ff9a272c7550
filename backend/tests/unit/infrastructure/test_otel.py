"""`FASTAPI_TELEMETRY`: FastAPI's native OpenTelemetry runs when OpenTelemetry is set up (or
forced on), and costs nothing per request otherwise."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace

from src.infrastructure.observability.otel import OFF, fastapi_telemetry, otel_configured

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


@pytest.fixture
def sdk(monkeypatch: pytest.MonkeyPatch) -> RecordingTracerProvider:
    """An SDK tracer provider installed globally (as `opentelemetry-instrument` does)."""
    provider = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return provider


def spans_made(telemetry: object, provider: RecordingTracerProvider) -> int:
    app = FastAPI(telemetry=telemetry)  # type: ignore[arg-type]

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    with TestClient(app) as client:
        for _ in range(3):
            assert client.get("/ping").json() == {"ok": True}
    return provider.tracer.spans


def test_off_and_on_are_what_they_say():
    assert fastapi_telemetry("off", environ={"OTEL_SERVICE_NAME": "api"}) == OFF
    assert fastapi_telemetry("on", environ={}) == {}


def test_auto_is_off_when_nothing_is_set_up():
    assert not otel_configured(environ={"FASTAPI_TELEMETRY": "auto", "PATH": "/usr/bin"})
    assert fastapi_telemetry("auto", environ={}) == OFF


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_SERVICE_NAME": "api"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
        {"FASTAPI_OTEL_AUTO_CONFIGURE": "true"},
    ],
)
def test_auto_is_on_when_the_environment_asks_for_opentelemetry(environ):
    assert fastapi_telemetry("auto", environ=environ) == {}


def test_auto_stays_off_when_the_sdk_is_disabled():
    environ = {"OTEL_SDK_DISABLED": "true", "OTEL_SERVICE_NAME": "api"}
    assert fastapi_telemetry("auto", environ=environ) == OFF


def test_auto_is_on_when_an_sdk_provider_is_installed(sdk):
    assert fastapi_telemetry("auto", environ={}) == {}
    assert spans_made(fastapi_telemetry("auto", environ={}), sdk) > 0


def test_off_never_asks_the_sdk_for_a_tracer(sdk):
    assert spans_made(fastapi_telemetry("off"), sdk) == 0


def test_on_traces_requests_through_the_installed_provider(sdk):
    assert spans_made(fastapi_telemetry("on"), sdk) >= 3  # one per request at least
