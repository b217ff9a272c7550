"""The API contract: the OpenAPI document lists every status each route can answer, with the
error model; path ids are bounded on every database; a 405 names every method of the path;
data the schema allows is accepted and data it refuses is refused.

`scripts/api_contract.py` (Schemathesis against a live server, run by `.ci/run`) checks the
same contract by fuzzing; these tests pin its rules where they are declared.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from src.interfaces.main import app as fastapi_app
from src.interfaces.openapi import ERROR_REF, _calls
from src.modules.auth.dependencies import current_superuser, current_user, optional_session
from src.modules.common.schemas import MAX_ID
from src.modules.rate_limit.dependencies import enforce_rate_limit
from src.modules.user.schemas import RESERVED_USERNAMES
from tests.helpers.factories import build_user_create_payload

pytestmark = pytest.mark.integration

UNSAFE = {"post", "put", "patch", "delete"}


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = fastapi_app.openapi()
    return [
        (method, path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


def _statuses(method: str, path: str) -> set[int]:
    operation = fastapi_app.openapi()["paths"][path][method]
    return {int(status) for status in operation["responses"]}


# What each kind of route must document (beyond 503, which every operation documents).
EXPECTED = {
    ("post", "/api/v1/users"): {400, 409, 413, 422, 429},
    ("get", "/api/v1/users"): {401, 403, 422, 429},
    ("get", "/api/v1/users/me"): {401, 429},
    ("get", "/api/v1/users/{username}"): {404, 422, 429},
    ("patch", "/api/v1/users/{username}"): {400, 401, 403, 404, 409, 413, 422, 429},
    ("delete", "/api/v1/users/{username}"): {401, 403, 404, 422, 429},
    ("get", "/api/v1/tiers"): {422, 429},
    ("post", "/api/v1/tiers"): {400, 401, 403, 409, 413, 422, 429},
    ("delete", "/api/v1/tiers/{name}"): {401, 403, 404, 409, 422, 429},
    ("get", "/api/v1/tiers/{name}/rate-limits/{rule_id}"): {401, 403, 404, 422, 429},
    ("patch", "/api/v1/tiers/{name}/rate-limits/{rule_id}"): {
        400,
        401,
        403,
        404,
        409,
        413,
        422,
        429,
    },
    ("post", "/api/v1/auth/login"): {401, 403, 413, 415, 422, 429},
    ("post", "/api/v1/auth/mfa/verify"): {400, 401, 403, 413, 422, 429},
    ("post", "/api/v1/auth/mfa/enroll"): {400, 401, 403, 409, 413, 422, 429},
    ("post", "/api/v1/auth/email/verify-confirm"): {400, 413, 422, 429},
    ("post", "/api/v1/auth/change-password"): {400, 401, 403, 413, 422, 429},
    ("get", "/api/v1/auth/me"): {429},
    ("post", "/api/v1/auth/logout"): {401, 429},  # session-only: 401 for an API key
    ("post", "/api/v1/api-keys"): {400, 401, 403, 413, 422, 429},
    ("get", "/api/v1/api-keys"): {401, 422, 429},
    ("get", "/api/v1/api-keys/{key_id}"): {401, 404, 422, 429},
    ("patch", "/api/v1/api-keys/{key_id}"): {400, 401, 403, 404, 409, 413, 422, 429},
    ("delete", "/api/v1/api-keys/{key_id}"): {401, 403, 404, 422, 429},
    ("get", "/health"): set(),
}


@pytest.mark.parametrize(("method", "path"), sorted(EXPECTED))
def test_the_document_lists_the_statuses_of_each_route(method, path):
    errors = {status for status in _statuses(method, path) if status >= 400}
    assert errors == {503, *EXPECTED[(method, path)]}


def test_every_error_response_uses_the_error_model_and_every_operation_can_be_unavailable():
    operations = _operations()
    assert len(operations) > 35
    for method, path, operation in operations:
        responses = operation["responses"]
        assert "503" in responses, f"{method} {path}"
        if path != "/health/ready":  # readiness answers its report, not an error
            assert responses["503"]["headers"]["Retry-After"]["required"] is True
        if path.startswith("/api/"):
            headers = responses["429"]["headers"]
            assert headers["Retry-After"]["required"] is True, f"{method} {path}"
            assert {"X-RateLimit-Limit", "X-RateLimit-Remaining"} <= headers.keys()
        if "requestBody" in operation:
            assert {"413", "422"} <= responses.keys(), f"{method} {path}"
        if "{" in path:
            assert {"404", "422"} <= responses.keys(), f"{method} {path}"
        for status, response in responses.items():
            if int(status) >= 400 and path != "/health/ready":  # readiness: its own report
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, f"{method} {path} {status}"
    components = fastapi_app.openapi()["components"]["schemas"]
    assert "HTTPValidationError" not in components
    assert components["ErrorResponse"]["properties"]["detail"]["anyOf"][1]["items"] == {
        "$ref": "#/components/schemas/ValidationIssue"
    }


def test_the_statuses_follow_the_dependencies_each_route_declares():
    """Walked from the routes: a route cannot gain `SuperUser` without documenting 403."""
    checked = 0
    for context in iter_route_contexts(fastapi_app.routes):
        if not isinstance(context.original_route, APIRoute) or not context.include_in_schema:
            continue
        calls = set(_calls(context.dependant))
        for method in context.methods:
            statuses = _statuses(method.lower(), context.path_format)
            if current_user in calls or current_superuser in calls:
                assert 401 in statuses, f"{method} {context.path_format}"
            if current_superuser in calls:
                assert 403 in statuses, f"{method} {context.path_format}"
            if optional_session in calls and method.lower() in UNSAFE:
                assert 403 in statuses, f"{method} {context.path_format} (CSRF)"
            if enforce_rate_limit in calls:
                assert 429 in statuses, f"{method} {context.path_format}"
            checked += 1
    assert checked > 35


def test_the_schema_states_the_username_rules_and_the_known_rule_paths():
    components = fastapi_app.openapi()["components"]["schemas"]
    pattern = re.compile(components["UserCreate"]["properties"]["username"]["pattern"])
    for reserved in RESERVED_USERNAMES:
        assert not pattern.search(reserved)
        assert not pattern.search(reserved.title())
    assert pattern.search("alice")
    assert pattern.search("admins")
    email = re.compile(components["UserCreate"]["properties"]["email"]["pattern"])
    assert email.search("ann@example.com")
    assert not email.search("ann@mail.Test")
    assert not email.search('"ann"@example.com')
    assert not email.search("ann@[127.0.0.1]")
    for model in ("RateLimitCreate", "RateLimitUpdate"):
        paths = components[model]["properties"]["path"]["enum"]
        assert {"*", "/api/v1/users/{username}"} <= set(paths)
        assert all(path == "*" or path.startswith("/api/") for path in paths)
    update = components["RateLimitUpdate"]["properties"]
    assert "anyOf" not in update["max_requests"]  # null is refused, so it is not offered


@pytest.mark.parametrize(
    "rule_id",
    [
        pytest.param("0", id="zero"),
        pytest.param("-1", id="negative"),
        pytest.param(str(MAX_ID + 1), id="past-int32"),
        pytest.param("99999999999999999999999", id="past-int64"),
    ],
)
async def test_path_ids_out_of_range_are_a_422_on_every_method(superuser_client, rule_id):
    one = f"/api/v1/tiers/free/rate-limits/{rule_id}"
    for response in (
        await superuser_client.get(one),
        await superuser_client.patch(one, json={"max_requests": 5}),
        await superuser_client.delete(one),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["path", "rule_id"]


async def test_the_largest_path_id_is_a_plain_404(superuser_client):
    one = f"/api/v1/tiers/free/rate-limits/{MAX_ID}"
    assert (await superuser_client.get(one)).status_code == 404
    assert (await superuser_client.patch(one, json={"max_requests": 5})).status_code == 404
    assert (await superuser_client.delete(one)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        pytest.param("OPTIONS", "/api/v1/tiers/free", "DELETE, GET, PATCH", id="every-method"),
        pytest.param("PUT", "/api/v1/users/", "GET, POST", id="trailing-slash"),
        pytest.param("POST", "/api/v1/users/me", "GET", id="literal-before-template"),
        pytest.param("HEAD", "/api/v1/tiers/free/rate-limits/1", "DELETE, GET, PATCH", id="head"),
        pytest.param("DELETE", "/health", "GET", id="outside-the-api"),
    ],
)
async def test_a_405_names_every_method_of_the_route_in_allow(client, method, path, allow):
    response = await client.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert response.json() == {"detail": "Method Not Allowed"}


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        pytest.param("name", "   ", 422, id="blank-name"),
        pytest.param("name", " " + "n" * 50, 422, id="name-over-50-before-stripping"),
        pytest.param("name", "  Ann  ", 201, id="name-stripped"),
        pytest.param("email", "ann@mail.example", 201, id="documentation-domain"),
        pytest.param("email", "ann@com", 201, id="single-label-domain"),
        pytest.param("email", "ann@mail.TEST", 422, id="special-use-domain"),
        pytest.param("email", '"ann lee"@example.com', 422, id="quoted-local-part"),
        pytest.param("email", "ann@[127.0.0.1]", 422, id="address-literal"),
        pytest.param("email", "Ann <ann@example.com>", 422, id="display-name"),
        pytest.param("username", "Root", 422, id="reserved-any-case"),
    ],
)
async def test_sign_up_accepts_what_the_schema_allows(client, field, value, status):
    payload = build_user_create_payload(**{field: value})

    response = await client.post("/api/v1/users", json=payload)

    assert response.status_code == status, response.text
    if field == "name" and status == 201:
        assert response.json()["name"] == "Ann"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        pytest.param("  ", 422, id="blank"),
        pytest.param("Prémium", 422, id="not-ascii"),
        pytest.param(" gold plan ", 201, id="stripped"),
    ],
)
async def test_tier_names_are_checked_as_the_schema_says(superuser_client, name, status):
    response = await superuser_client.post("/api/v1/tiers", json={"name": name})

    assert response.status_code == status, response.text
    if status == 201:
        assert response.json()["name"] == name.strip()


def test_the_routes_say_how_to_authenticate():
    """`X-API-Key` where a key is accepted, the session cookie where a session is; a
    session-only route (managing keys) does not list the key."""
    schema = fastapi_app.openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["apiKey"] | {"description": ""} == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "",
    }
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == (
        "cookie",
        "session",
    )
    paths = schema["paths"]
    assert paths["/api/v1/users/me"]["get"]["security"] == [{"apiKey": []}, {"sessionCookie": []}]
    assert paths["/api/v1/auth/me"]["get"]["security"] == [
        {"apiKey": []},
        {"sessionCookie": []},
        {},  # anonymous callers are answered too
    ]
    for method in ("get", "post"):
        assert paths["/api/v1/api-keys"][method]["security"] == [{"sessionCookie": []}]
    assert "security" not in paths["/api/v1/auth/login"]["post"]
    assert "security" not in paths["/health"]["get"]
