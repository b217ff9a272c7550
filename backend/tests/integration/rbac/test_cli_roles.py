"""`app roles`: list the registry, create a role, give and take it back, from a shell; the
user's next request has the change."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from src.interfaces.cli import cli
from src.modules.rbac.registry import REGISTRY
from tests.helpers.factories import build_user_create_payload, login

pytestmark = pytest.mark.integration

runner = CliRunner()


async def _run(*args: str):
    # The command runs its own event loop, so it goes to a thread, as from a shell.
    return await asyncio.to_thread(runner.invoke, cli, list(args))


@pytest.mark.unit
def test_roles_permissions_lists_the_registry():
    result = runner.invoke(cli, ["roles", "permissions"])
    assert result.exit_code == 0, result.output
    assert [line.split("\t")[0] for line in result.output.splitlines()] == list(REGISTRY)


async def test_create_assign_and_remove_a_role(committed_client):
    payload = build_user_create_payload(username="role_holder")
    assert (await committed_client.post("/api/v1/users", json=payload)).status_code == 201
    await login(committed_client, "role_holder")
    assert (await committed_client.get("/api/v1/users")).status_code == 403

    created = await _run("roles", "create", "readers", "-p", "user.read", "-p", "role.read")
    assert created.exit_code == 0, created.output
    assert "'readers' created" in created.output
    listed = await _run("roles", "list")
    assert listed.output.split("\t")[1:] == ["readers", "role.read,user.read\n"]

    given = await _run("roles", "assign", "role_holder", "readers")
    assert given.exit_code == 0, given.output
    assert (await committed_client.get("/api/v1/users")).status_code == 200

    taken = await _run("roles", "assign", "role_holder", "readers", "--remove")
    assert taken.exit_code == 0, taken.output
    assert (await committed_client.get("/api/v1/users")).status_code == 403


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["roles", "create", "typo", "-p", "users.raed"], "Unknown permissions: users.raed"),
        (["roles", "assign", "nobody", "ghost"], "Role 'ghost' not found"),
    ],
)
async def test_refusals_are_one_line(clean_tables, args, message):
    result = await _run(*args)
    assert result.exit_code == 1
    assert result.output.strip() == f"error: {message}"
