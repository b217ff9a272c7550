"""The `app` command, run in-process with typer's runner against the test database."""

import asyncio

import pytest
from typer.testing import CliRunner

from src.infrastructure.config import Environment, settings
from src.interfaces.cli import cli

runner = CliRunner()
STRONG = "Copper-Meadow-Falcon-63"  # passes the password policy
ADMIN = ["--username", "root_admin", "--email", "Root@Example.com", "--password", STRONG]


@pytest.mark.integration
def test_seed_creates_the_default_tier_once(clean_tables):
    first = runner.invoke(cli, ["seed"])
    second = runner.invoke(cli, ["seed"])
    assert first.exit_code == 0, first.output
    assert second.exit_code == 0, second.output
    assert settings.DEFAULT_TIER_NAME in second.output


@pytest.mark.integration
def test_create_superuser_is_idempotent(clean_tables):
    created = runner.invoke(cli, ["create-superuser", *ADMIN])
    again = runner.invoke(cli, ["create-superuser", *ADMIN])
    assert created.exit_code == 0, created.output
    assert "created" in created.output
    assert again.exit_code == 0, again.output
    assert "already a superuser" in again.output


@pytest.mark.integration
async def test_create_superuser_promotes_an_existing_user_and_ends_their_sessions(
    committed_client,
):
    from tests.helpers.factories import build_user_create_payload, login

    payload = build_user_create_payload(username="promote_me")
    assert (await committed_client.post("/api/v1/users", json=payload)).status_code == 201
    await login(committed_client, "promote_me")

    # The command runs its own event loop, so it goes to a thread, as from a shell.
    result = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["create-superuser", "--username", "promote_me", "--email", payload["email"]],
    )

    assert result.exit_code == 0, result.output
    assert "promoted" in result.output
    # The privilege change ended the old session: a stale principal cannot survive it.
    assert (await committed_client.get("/api/v1/users/me")).status_code == 401
    await login(committed_client, "promote_me")
    assert (await committed_client.get("/api/v1/users")).status_code == 200


@pytest.mark.integration
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        pytest.param("short", "password: must be at least 8 characters long", id="short"),
        pytest.param(
            "baseball", "password: too common (found in a list of breached passwords)", id="common"
        ),
        pytest.param(
            "Zq7-ROOT_ADMIN-9x!", "password: must not contain the username", id="contains-username"
        ),
    ],
)
def test_create_superuser_refuses_a_weak_password_in_one_line(clean_tables, password, reason):
    options = ["--username", "root_admin", "--email", "Root@Example.com", "--password", password]

    refused = runner.invoke(cli, ["create-superuser", *options])

    assert refused.exit_code == 1
    assert refused.stderr.splitlines() == [f"root_admin: not created: {reason}"]
    assert refused.stdout == ""
    assert password not in refused.output
    assert "input_value" not in refused.output  # no pydantic dump
    created = runner.invoke(cli, ["create-superuser", *ADMIN])  # nothing was written
    assert "created" in created.output, created.output


@pytest.mark.integration
def test_create_superuser_needs_a_username_and_email(clean_tables, monkeypatch):
    monkeypatch.setattr(settings, "ADMIN_USERNAME", None)
    result = runner.invoke(cli, ["create-superuser"])
    assert result.exit_code != 0
    assert "username" in result.output


@pytest.mark.unit
def test_check_config_passes_in_pytest_and_hides_secrets():
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.output
    assert settings.SECRET_KEY not in result.output


@pytest.mark.unit
def test_check_config_fails_on_insecure_production_settings(monkeypatch):
    monkeypatch.setattr(settings, "ENVIRONMENT", Environment.PRODUCTION)
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 1
    assert "SECRET_KEY" in result.output


@pytest.mark.unit
def test_help_lists_every_command():
    result = runner.invoke(cli, ["--help"])
    for command in ("serve", "migrate", "create-superuser", "seed", "check-config"):
        assert command in result.output
