"""Whether FastAPI's native OpenTelemetry runs (`FASTAPI_TELEMETRY`).

FastAPI (0.142 and later) records a span, HTTP metrics and validation logs for every request
through the global OpenTelemetry providers, and exports nothing until an SDK is set up. To
know whether one is, it asks the three providers on every request (each lookup reads the
environment), which costs about a tenth of a trivial request here: `/health` 74 -> 67 us of
CPU without it (in-process, median of five alternating runs).

`auto`, the default, decides once, when the app is created: on when OpenTelemetry is set up by
then (an SDK provider installed, as `opentelemetry-instrument` does before the app is imported;
an `OTEL_*` variable in the environment; `FASTAPI_OTEL_AUTO_CONFIGURE=true`, with which FastAPI
builds the exporters itself), else off. `on` keeps FastAPI's own per-request check (for an SDK
set up after the app is created); `off` turns it off. The decision and its reason are logged
once at startup. The product's own metrics (Prometheus) and access log do not depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fastapi.telemetry import TelemetryConfig
from opentelemetry import _logs, metrics, trace

from src.infrastructure.config.settings import TelemetryMode

OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# The API's stand-ins until an SDK installs a provider, and its explicit no-op ones: by module
# and name, as FastAPI tells them apart (a vendor's own proxy class is a real provider).
_PLACEHOLDERS = frozenset(
    {
        ("opentelemetry.trace", "ProxyTracerProvider"),
        ("opentelemetry.trace", "NoOpTracerProvider"),
        ("opentelemetry.metrics._internal", "_ProxyMeterProvider"),
        ("opentelemetry.metrics", "NoOpMeterProvider"),
        ("opentelemetry._logs._internal", "ProxyLoggerProvider"),
        ("opentelemetry._logs._internal", "NoOpLoggerProvider"),
    }
)


def decide(mode: TelemetryMode, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether FastAPI's telemetry runs under `mode`, and why (logged at startup)."""
    if mode != "auto":
        return mode == "on", f"FASTAPI_TELEMETRY={mode}"
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False, "OTEL_SDK_DISABLED=true"
    if env.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return True, "FASTAPI_OTEL_AUTO_CONFIGURE=true"
    variables = sorted(name for name in env if name.startswith("OTEL_"))
    if variables:
        return True, f"{variables[0]} is set"
    for provider in (
        trace.get_tracer_provider(),
        metrics.get_meter_provider(),
        _logs.get_logger_provider(),
    ):
        cls = type(provider)
        if (cls.__module__, cls.__name__) not in _PLACEHOLDERS:
            return True, f"{cls.__module__}.{cls.__qualname__} is installed"
    return False, (
        "auto: no OpenTelemetry SDK provider and no OTEL_* variable when the app was created; "
        "FASTAPI_TELEMETRY=on looks for one on every request"
    )
