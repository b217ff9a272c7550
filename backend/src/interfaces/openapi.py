"""The OpenAPI document, made exact: every status a route can answer, with the error model.

FastAPI documents a route's success and the statuses the route declares itself
(`responses=responses(404, 409)` from `src.modules.common.schemas`: what its service raises).
`install_openapi(app)` wraps `app.openapi` so that, when the document is first built (once per
process, on the first `/openapi.json`; never on an API request), each operation also gets the
statuses implied by how it is built, so they cannot drift from the code:

- from the dependencies it declares (walked recursively, the `/api/v1` router's included):
  `current_session`, `current_user` and friends, `refuse_api_key`: 401; `current_superuser`,
  `current_verified_user`, any `require_permissions(...)` (a `PermissionCheck`, which also
  accepts a key): 403; any session dependency on an unsafe method: 403 (CSRF);
  `enforce_rate_limit`: 429 with `Retry-After` and `X-RateLimit-*`;
- from its parameters: a path parameter: 404 (nothing by that name or id); any parameter or
  body: 422 with `ErrorResponse` (FastAPI's default model lacks the text `detail` that a
  database refusal or a service-level rule answers);
- from FastAPI: a body it parses: 400 when the bytes are not text (a JSON syntax error is a
  422);
- from the edge: a request body: 413; every operation: 503 with `Retry-After` (the admission
  queue, a database or Redis that is down).

Each operation also gets its `security`, from the same dependencies: the `sessionCookie` scheme
(apiKey in the session cookie; unsafe methods also need `X-CSRF-Token`) where a session is
accepted, the `apiKey` scheme (apiKey in the `X-API-Key` header) where a key is accepted too
(`current_user` and friends, `optional_session`, but not `current_session` or
`refuse_api_key`), and the empty requirement where anonymous callers are served as well
(`optional_session`).

Each added status uses `ErrorResponse`; a status the route documented itself is kept as it is.
A string property marked `x-route-template` (a rate-limit rule's `path`) gets the `enum` of
the API's route templates, which is what the server accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from src.infrastructure.auth.csrf import SAFE_METHODS
from src.infrastructure.config import settings
from src.infrastructure.route_templates import all_route_templates
from src.modules.auth.dependencies import (
    PermissionCheck,
    current_session,
    current_superuser,
    current_user,
    current_verified_user,
    optional_session,
    refuse_api_key,
)
from src.modules.common.schemas import ERROR_DESCRIPTIONS, ErrorResponse, error_response
from src.modules.rate_limit.dependencies import enforce_rate_limit

ERROR_REF = "#/components/schemas/ErrorResponse"
ROUTE_TEMPLATE_MARK = "x-route-template"
_SIGNED_IN = {current_session, current_user, current_superuser, current_verified_user}
_SESSION = _SIGNED_IN | {optional_session}
_NEEDS_MORE = {current_superuser, current_verified_user}
_NO_API_KEY = {refuse_api_key}  # a session-only route without a session: 401 for a key
_SESSION_ONLY = {current_session, refuse_api_key}
API_KEY_SCHEME = "apiKey"
SESSION_SCHEME = "sessionCookie"


def security_schemes() -> dict[str, dict[str, str]]:
    return {
        API_KEY_SCHEME: {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key (`POST /api/v1/api-keys`); its scopes apply.",
        },
        SESSION_SCHEME: {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The session cookie set by `POST /api/v1/auth/login`; unsafe "
            f"methods also send `{settings.CSRF_HEADER_NAME}` (the `{settings.CSRF_COOKIE_NAME}` "
            "cookie's value).",
        },
    }


def security_requirements(dependant: Dependant) -> list[dict[str, list[str]]] | None:
    """How a route authenticates (see above); None for routes that take no credentials."""
    calls = _call_set(dependant)
    if not calls & _SESSION:
        return None
    requirements: list[dict[str, list[str]]] = [{SESSION_SCHEME: []}]
    if not calls & _SESSION_ONLY:
        requirements.insert(0, {API_KEY_SCHEME: []})
    if not calls & _SIGNED_IN:
        requirements.append({})  # optional_session alone: anonymous callers too
    return requirements


def _call_set(dependant: Dependant) -> set[Callable[..., Any]]:
    """The route's dependencies, each permission check standing for `current_superuser` (the
    same statuses and credentials: a signed-in caller, through a session or a key, or 403)."""
    calls = set(_calls(dependant))
    if any(isinstance(call, PermissionCheck) for call in calls):
        calls.add(current_superuser)
    return calls


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _params(dependant: Dependant, kind: str) -> bool:
    """Whether the route or one of its dependencies declares a `kind` parameter."""
    if getattr(dependant, f"{kind}_params"):
        return True
    return any(_params(dependency, kind) for dependency in dependant.dependencies)


def implied_statuses(
    dependant: Dependant,
    methods: set[str],
    *,
    has_body: bool,
    parsed_body: bool = False,
    path_params: bool,
) -> set[int]:
    """The error statuses a route can answer because of how it is declared (see above)."""
    calls = _call_set(dependant)
    statuses = {503}
    if calls & (_SIGNED_IN | _NO_API_KEY):
        statuses.add(401)
    if calls & _NEEDS_MORE or (calls & _SESSION and not methods <= SAFE_METHODS):
        statuses.add(403)
    if enforce_rate_limit in calls:
        statuses.add(429)
    if path_params:
        statuses.add(404)
    if has_body:
        statuses |= {413, 422}
    if parsed_body:
        statuses.add(400)
    if any(_params(dependant, kind) for kind in ("path", "query", "header", "cookie")):
        statuses.add(422)
    return statuses


def _error_object(status: int) -> dict[str, Any]:
    declared = error_response(status)
    response: dict[str, Any] = {
        "description": declared["description"],
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if "headers" in declared:
        response["headers"] = declared["headers"]
    return response


def _document_operation(operation: dict[str, Any], statuses: set[int]) -> None:
    documented: dict[str, Any] = operation.setdefault("responses", {})
    validation = documented.get("422")
    # FastAPI's own 422 (HTTPValidationError) is replaced: ours also answers a text detail.
    if validation is not None and "HTTPValidationError" in str(validation):
        del documented["422"]
    for status in sorted(statuses):
        documented.setdefault(str(status), _error_object(status))


def _mark_route_templates(node: Any, templates: list[str]) -> None:
    if isinstance(node, dict):
        if node.pop(ROUTE_TEMPLATE_MARK, False):
            node["enum"] = templates
        for value in node.values():
            _mark_route_templates(value, templates)
    elif isinstance(node, list):
        for value in node:
            _mark_route_templates(value, templates)


def document(app: FastAPI, schema: dict[str, Any]) -> None:
    """Add the implied error responses to `schema` (the document FastAPI built for `app`)."""
    paths: dict[str, Any] = schema.get("paths", {})
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not context.include_in_schema:
            continue
        operations = paths.get(context.path_format or "", {})
        dependant: Dependant = context.dependant
        openapi_extra = route.openapi_extra or {}
        has_body = context.body_field is not None or "requestBody" in openapi_extra
        statuses = implied_statuses(
            dependant,
            set(context.methods or ()),
            has_body=has_body,
            parsed_body=context.body_field is not None,
            path_params=_params(dependant, "path"),
        )
        security = security_requirements(dependant)
        for method in context.methods or ():
            operation = operations.get(method.lower())
            if operation is not None:
                _document_operation(operation, statuses)
                if security is not None:
                    operation.setdefault("security", security)
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(security_schemes())
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in (
        ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
        .pop("$defs", {})
        .items()
    ):
        components.setdefault(name, definition)
    components.setdefault(
        "ErrorResponse",
        ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}"),
    )
    components["ErrorResponse"].pop("$defs", None)
    if "HTTPValidationError" not in str(paths):  # nothing refers to FastAPI's model any more
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    templates = sorted(t for t in all_route_templates(app) if t.startswith("/api/"))
    _mark_route_templates(components, ["*", *templates])


def install_openapi(app: FastAPI) -> None:
    """Make `app.openapi()` return the exact document (built once, then cached by FastAPI)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        document(app, schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = [
    "ERROR_DESCRIPTIONS",
    "document",
    "implied_statuses",
    "install_openapi",
    "security_requirements",
    "security_schemes",
]
