"""The permission registry, the `Permission` type, `Principal.missing`, and what the routes'
permission checks name and document."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from src.interfaces.main import app
from src.modules.auth.dependencies import PermissionCheck, require_permissions
from src.modules.common.permissions import Permission
from src.modules.rbac import registry
from tests.helpers.factories import make_principal
from tests.helpers.roles import PROMISED_PERMISSIONS

pytestmark = pytest.mark.unit


def _checks(dependant) -> list[PermissionCheck]:
    found = []
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, PermissionCheck):
            found.append(dependency.call)
        found += _checks(dependency)
    return found


def test_the_registry_holds_every_slices_permissions_once_sorted():
    names = list(registry.REGISTRY)
    assert names == sorted(names)
    for name in PROMISED_PERMISSIONS:
        assert registry.REGISTRY[name].name == name
    assert registry.unknown(["user.read", "nope", "a.b"]) == ["a.b", "nope"]


def test_a_name_declared_twice_fails():
    twice = [Permission("x.y", "one"), Permission("x.y", "two")]
    with pytest.raises(ValueError, match="declared twice"):
        registry._collect(twice)


@pytest.mark.parametrize("name", ["", "user", "User.read", "user.", ".read", "user,read", "a b.c"])
def test_a_permission_name_is_dotted_lower_case(name):
    with pytest.raises(ValueError, match="invalid permission name"):
        Permission(name, "d")


def test_missing_names_what_a_caller_lacks_and_a_superuser_lacks_nothing():
    caller = make_principal(permissions=frozenset({"user.read"}))
    assert caller.missing(["user.read", "tier.manage", "role.read"]) == ["role.read", "tier.manage"]
    assert caller.allows(["user.read"])
    assert not caller.allows(["user.read", "tier.manage"])
    assert make_principal(is_superuser=True).missing(["tier.manage"]) == []


def test_require_permissions_needs_one():
    with pytest.raises(ValueError, match="at least one"):
        require_permissions()


def test_every_guarded_route_names_registered_permissions():
    guarded = {}
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        for check in _checks(context.dependant):
            key = (context.path_format, *sorted(context.methods or ()))
            guarded[key] = check.names
            assert not registry.unknown(check.names), (key, check.names)
    assert guarded[("/api/v1/users", "GET")] == ("user.read",)
    assert guarded[("/api/v1/users/{username}/tier", "PATCH")] == ("user.update",)
    assert guarded[("/api/v1/tiers", "POST")] == ("tier.manage",)
    assert guarded[("/api/v1/tiers/{name}/rate-limits", "GET")] == ("ratelimit.manage",)
    assert guarded[("/api/v1/roles/{role_id}/permissions", "PUT")] == ("role.update",)
    assert guarded[("/api/v1/users/{username}/roles/{role_id}", "DELETE")] == ("role.assign",)


def test_the_document_gives_permission_routes_their_statuses_and_credentials():
    paths = app.openapi()["paths"]
    for path, method, statuses in (
        ("/api/v1/users", "get", {"401", "403", "422", "429", "503"}),
        ("/api/v1/roles", "post", {"401", "403", "409", "413", "422", "429", "503"}),
        ("/api/v1/roles/{role_id}", "delete", {"401", "403", "404", "422", "503"}),
        ("/api/v1/roles/{role_id}/permissions", "put", {"401", "403", "404", "422"}),
        ("/api/v1/users/{username}/roles/{role_id}", "put", {"401", "403", "404", "409"}),
        ("/api/v1/users/{username}/roles", "get", {"401", "403", "404"}),
        ("/api/v1/permissions", "get", {"401", "503"}),
    ):
        operation = paths[path][method]
        assert statuses <= set(operation["responses"]), (path, method)
        assert {"apiKey": []} in operation["security"], (path, method)
        assert {} not in operation["security"]
