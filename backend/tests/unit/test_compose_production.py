"""The repository's compose.yaml runs the production profile the app itself accepts.

Its services' environments, interpolated the way Compose does with dummy secrets, must pass
`find_problems` (what `app serve` and `app check-config` refuse to start on), and every secret
must come from a variable Compose requires, never a value written in the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from src.infrastructure.config import Settings
from src.infrastructure.security.validator import find_problems

pytestmark = pytest.mark.unit

COMPOSE = Path(__file__).resolve().parents[3] / "compose.yaml"
APP_SERVICES = ("api", "worker", "scheduler", "migrate")
SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD")
DUMMY = {
    "SECRET_KEY": "kP3v9sQ2xZ8mN4bT7wY1cR6hJ0fL5gD2aE9uI3oS-dummy",
    "POSTGRES_PASSWORD": "dummy-Pg-Pa55-for-tests",
    "REDIS_PASSWORD": "dummy-Redis-Pa55",
    "EMAIL_FROM": "no-reply@example.com",
    "SMTP_HOST": "smtp.example.com",
    "FRONTEND_URL": "https://app.example.com",
}
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$\$")


class MissingVariable(LookupError):
    pass


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"] or ""
        found = variables.get(name)
        if op in (":?", "?") and (found is None or (op == ":?" and not found)):
            raise MissingVariable(f"{name}: {arg}")
        if op in (":-", "-") and (found is None or (op == ":-" and not found)):
            return arg
        return found or ""

    return _VARIABLE.sub(one, value)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _environment(service: str, variables: dict[str, str]) -> dict[str, str]:
    raw = _compose()["services"][service]["environment"]
    return {key: interpolate(str(value), variables) for key, value in raw.items()}


def _settings(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the container builds them: from its environment only."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_environment_passes_the_production_validator(service, monkeypatch):
    settings = _settings(_environment(service, DUMMY), monkeypatch)
    assert settings.is_production
    assert find_problems(settings) == []


@pytest.mark.parametrize("secret", [*SECRETS, "FRONTEND_URL", "SMTP_HOST"])
def test_compose_requires_each_secret_and_production_value(secret):
    variables = {key: value for key, value in DUMMY.items() if key != secret}
    for service in APP_SERVICES:
        with pytest.raises(MissingVariable, match=secret):
            _environment(service, variables)


def test_no_secret_value_is_written_in_the_file():
    text = COMPOSE.read_text()
    for key in ("SECRET_KEY", "POSTGRES_PASSWORD", "SMTP_PASSWORD", "REDISCLI_AUTH"):
        for value in re.findall(rf"^\s*{key}:\s*(.+)$", text, flags=re.MULTILINE):
            assert value.startswith("${"), f"{key} is written in compose.yaml"
    assert not re.search(r"://[^:/@\s]*:[^$@\s]+@", text), "a URL with a literal password"


def test_one_scheduler_and_migrations_before_the_app():
    services = _compose()["services"]
    assert services["scheduler"]["deploy"]["replicas"] == 1
    for name in ("api", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    assert services["migrate"]["command"][:2] == ["migrate", "upgrade"]
    assert services["rabbitmq"]["profiles"] == ["rabbitmq"]
