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
set up after the app is created); `off` turns it off. The product's own metrics (Prometheus)
and access log do not depend on it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from fastapi.telemetry import TelemetryConfig
from opentelemetry import _logs, metrics, trace

Mode = Literal["auto", "on", "off"]
OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
# The API's stand-ins until an SDK installs a provider (and its explicit no-op ones).
_PLACEHOLDERS = frozenset(
    {
        "ProxyTracerProvider",
        "NoOpTracerProvider",
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
        "ProxyLoggerProvider",
        "NoOpLoggerProvider",
    }
)


def fastapi_telemetry(mode: Mode, environ: Mapping[str, str] | None = None) -> TelemetryConfig:
    """The `telemetry` argument for `FastAPI(...)` under `mode`: `{}` keeps FastAPI's defaults."""
    if mode == "on" or (mode == "auto" and otel_configured(environ)):
        return {}
    return OFF.copy()


def otel_configured(environ: Mapping[str, str] | None = None) -> bool:
    """True when OpenTelemetry is set up in this process or asked for by the environment."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return True
    if any(name.startswith("OTEL_") for name in env):
        return True
    providers = (
        trace.get_tracer_provider(),
        metrics.get_meter_provider(),
        _logs.get_logger_provider(),
    )
    return any(type(provider).__name__ not in _PLACEHOLDERS for provider in providers)
