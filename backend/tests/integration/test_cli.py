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


@pytest.mark.integration
@pytest.mark.parametrize(
    ("options", "reason"),
    [
        pytest.param(
            ["--username", "admin", "--email", "other@example.com"],
            "username: Value error, the username 'admin' is reserved",
            id="reserved-username",
        ),
        pytest.param(
            ["--username", "second_admin", "--email", "root@example.com"],
            "This email is already registered",
            id="taken-email",
        ),
    ],
)
def test_create_superuser_refusals_are_one_line(clean_tables, options, reason):
    assert runner.invoke(cli, ["create-superuser", *ADMIN]).exit_code == 0

    refused = runner.invoke(cli, ["create-superuser", *options, "--password", STRONG])

    assert refused.exit_code == 1, refused.output
    assert refused.stderr.splitlines() == [f"{options[1]}: not created: {reason}"]
    assert refused.stdout == ""
    assert STRONG not in refused.output


def _every_secret(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Set every secret setting, and a password in every URL, to a value of its own."""
    from pydantic import SecretStr

    values = []
    for index, (name, field) in enumerate(type(settings).model_fields.items()):
        if "SecretStr" in str(field.annotation):
            value = f"secret-value-{index}-{name.lower()}"
            monkeypatch.setattr(settings, name, SecretStr(value))
            values.append(value)
    urls = {
        "REDIS_URL": "redis://:{}@redis:6379/0",
        "CACHE_REDIS_URL": "redis://cacheuser:{}@cache:6379/1",
        "RABBITMQ_URL": "amqp://app:{}@rabbit:5672/",
    }
    for name, template in urls.items():
        value = f"url-password-{name.lower()}"
        monkeypatch.setattr(settings, name, template.format(value))
        values.append(value)
    # The database URL too, without pointing the suite's engine anywhere else (not connected).
    database_password = "database-url-password"
    database_url = f"postgresql+asyncpg://app:{database_password}@db:5432/app"
    monkeypatch.setattr(settings, "DATABASE_URL", database_url)
    values.append(database_password)
    for provider in ("GOOGLE", "GITHUB"):  # a secret without its id would be a problem
        monkeypatch.setattr(settings, f"OAUTH_{provider}_CLIENT_ID", f"{provider.lower()}-id")
    return values


@pytest.mark.unit
def test_check_config_shows_no_secret_nor_url_password(monkeypatch):
    secrets = _every_secret(monkeypatch)
    assert len(secrets) >= 11  # SECRET_KEY, SMTP, cache, admin, metrics, 2 OAuth, 4 URLs

    result = runner.invoke(cli, ["check-config"])

    assert result.exit_code == 0, result.output
    for secret in secrets:
        assert secret not in result.output
    assert "SECRET_KEY=***" in result.stdout
    assert "DATABASE_URL=postgresql+asyncpg://app:***@db:5432/app" in result.stdout
    assert "RABBITMQ_URL=amqp://app:***@rabbit:5672/" in result.stdout


@pytest.mark.unit
def test_serve_refuses_insecure_production_settings_in_one_line(monkeypatch):
    secrets = _every_secret(monkeypatch)
    monkeypatch.setattr(settings, "ENVIRONMENT", Environment.PRODUCTION)

    refused = runner.invoke(cli, ["serve", "--port", "1"])

    assert refused.exit_code == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("error: refusing to start: SECRET_KEY")
    assert "EMAIL_BACKEND=console" in line
    assert refused.stdout == ""
    for secret in secrets:
        assert secret not in refused.output


@pytest.mark.integration
def test_migrate_says_what_it_applied(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/m.db")

    first = runner.invoke(cli, ["migrate", "upgrade"])
    again = runner.invoke(cli, ["migrate", "upgrade"])
    back = runner.invoke(cli, ["migrate", "downgrade"])

    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[0].startswith("applied 0001 (Initial schema")
    assert first.stdout.splitlines()[-1] == "database is at head"
    assert again.stdout.splitlines() == ["database is at head: nothing to apply"]
    last_applied = first.stdout.splitlines()[-2].split()[1]  # "applied <revision> (...)"
    assert back.stdout.startswith(f"reverted {last_applied} (")


@pytest.mark.unit
def test_check_config_passes_in_pytest_and_hides_secrets():
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.output
    assert settings.SECRET_KEY.get_secret_value() not in result.output


@pytest.mark.unit
def test_check_config_fails_on_insecure_production_settings(monkeypatch):
    monkeypatch.setattr(settings, "ENVIRONMENT", Environment.PRODUCTION)
    result = runner.invoke(cli, ["check-config"])
    assert result.exit_code == 1
    assert "SECRET_KEY" in result.output


@pytest.mark.unit
def test_help_lists_every_command():
    result = runner.invoke(cli, ["--help"])
    for command in ("serve", "migrate", "create-superuser", "roles", "seed", "check-config"):
        assert command in result.output
