"""Generate `docs/api.md` (the API reference) from the app's OpenAPI document.

    cd backend && uv run python scripts/api_reference.py           # rewrite docs/api.md
    cd backend && uv run python scripts/api_reference.py --check   # exit 1 when stale

One section per route family (OpenAPI tag), one entry per operation: method and path, who may
call it (from the operation's `security`, which `src/interfaces/openapi.py` derives from the
route's dependencies), its parameters, every request body field (type, required, bounds,
description) with an example body, and its statuses. The document is built in this process
with both OAuth providers configured (their routes exist only then) and `.env` ignored, so the
page does not depend on the machine. `tests/unit/docs/test_api_reference.py` runs `--check`,
so a route or schema changed without regenerating fails CI.

Why Markdown generated here rather than an mkdocs OpenAPI plugin (neoteroi-mkdocs,
mkdocs-swagger-ui-tag): the page must read as plain Markdown in the repository too (the README
links to it), it must state who may call each route in this app's terms (session + CSRF or API
key, from our security schemes), and a plugin would still need the document exported and
checked for staleness. Swagger UI and ReDoc are served by the app itself (`/docs`, `/redoc`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

BACKEND = Path(__file__).resolve().parents[1]
ROOT = BACKEND.parent
API_MD = ROOT / "docs" / "api.md"

# Set before the app is imported: the OAuth routes exist only when a provider is configured.
ENVIRONMENT = {
    "ENVIRONMENT": "pytest",
    "OAUTH_GOOGLE_CLIENT_ID": "reference",
    "OAUTH_GOOGLE_CLIENT_SECRET": "reference",
    "OAUTH_GITHUB_CLIENT_ID": "reference",
    "OAUTH_GITHUB_CLIENT_SECRET": "reference",
}
# Statuses every operation of their kind can answer, explained once at the top of the page.
COMMON = {"413", "422", "429", "503"}
METHODS = ("get", "post", "put", "patch", "delete")


def openapi_document() -> dict[str, Any]:
    os.environ.update(ENVIRONMENT)
    sys.path.insert(0, str(BACKEND))
    from src.interfaces.main import app

    document: dict[str, Any] = app.openapi()
    return document


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _one_of(values: list[Any]) -> str:
    if len(values) > 8:  # route templates: the list is in /openapi.json
        return "one of " + ", ".join(f"`{v}`" for v in values[:3]) + f", ... ({len(values)} values)"
    return "one of " + ", ".join(f"`{value}`" for value in values)


def type_of(document: dict[str, Any], schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        target = _resolve(document, schema)
        if "enum" in target:
            return _one_of(target["enum"])
        return str(target.get("title", "object"))
    if "anyOf" in schema:
        kinds = [type_of(document, option) for option in schema["anyOf"]]
        return " or ".join(kind for kind in kinds if kind != "null") + (
            " or null" if "null" in kinds else ""
        )
    if "enum" in schema:
        return _one_of(schema["enum"])
    kind = str(schema.get("type", "any"))
    if kind == "array":
        return f"list of {type_of(document, schema.get('items', {}))}"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return kind


def bounds_of(schema: dict[str, Any]) -> str:
    for option in schema.get("anyOf", []):
        if option.get("type") != "null":
            schema = {**option, **{k: v for k, v in schema.items() if k != "anyOf"}}
    found = []
    for key, label in (
        ("minLength", "length ≥ {}"),
        ("maxLength", "length ≤ {}"),
        ("minimum", "≥ {}"),
        ("exclusiveMinimum", "> {}"),
        ("maximum", "≤ {}"),
        ("minItems", "items ≥ {}"),
        ("maxItems", "items ≤ {}"),
    ):
        if key in schema:
            value = schema[key]
            found.append(label.format(int(value) if float(value).is_integer() else value))
    if "pattern" in schema:
        found.append("pattern")
    if "default" in schema:
        found.append(f"default `{json.dumps(schema['default'])}`")
    return ", ".join(found)


def example_of(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    if "$ref" in schema:
        schema = _resolve(document, schema)
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        return example_of(document, options[0]) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: example_of(document, field)
            for name, field in schema.get("properties", {}).items()
        }
    if kind == "array":
        return [example_of(document, schema.get("items", {}))]
    if "default" in schema:
        return schema["default"]
    placeholders = {"integer": 1, "number": 1.0, "boolean": True}
    if kind in placeholders:
        return placeholders[kind]
    return {"email": "alice@example.com", "date-time": "2026-01-01T00:00:00Z"}.get(
        schema.get("format", ""), "string"
    )


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def auth_of(operation: dict[str, Any], method: str) -> str:
    schemes = [next(iter(requirement), None) for requirement in operation.get("security", [])]
    if not schemes:
        return "none (anonymous)"
    accepted = []
    if "sessionCookie" in schemes:
        csrf = " + `X-CSRF-Token`" if method != "get" else ""
        accepted.append(f"session cookie{csrf}")
    if "apiKey" in schemes:
        accepted.append("`X-API-Key`")
    text = " or ".join(accepted)
    return f"optional: {text}, or anonymous" if None in schemes else text


def render_operation(
    document: dict[str, Any], path: str, method: str, op: dict[str, Any]
) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", ""]
    description = op.get("description") or op.get("summary", "")
    if description:
        lines += [" ".join(description.split()), ""]
    lines.append(f"- **Auth**: {auth_of(op, method)}")
    parameters = op.get("parameters", [])
    if parameters:
        lines += ["- **Parameters**:", ""]
        lines += ["    | name | in | type | required | bounds | description |"]
        lines += ["    | --- | --- | --- | --- | --- | --- |"]
        for parameter in parameters:
            schema = parameter.get("schema", {})
            lines.append(
                f"    | `{parameter['name']}` | {parameter['in']} "
                f"| {_cell(type_of(document, schema))} "
                f"| {'yes' if parameter.get('required') else 'no'} | {_cell(bounds_of(schema))} "
                f"| {_cell(parameter.get('description', schema.get('description', '')))} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        media = list(body["content"])
        schema = _resolve(document, body["content"][media[0]]["schema"])
        required = set(schema.get("required", []))
        kinds = ", ".join(f"`{kind}`" for kind in media)
        lines += [f"- **Request body** ({kinds}):", ""]
        lines += ["    | field | type | required | bounds | description |"]
        lines += ["    | --- | --- | --- | --- | --- |"]
        for name, field in schema.get("properties", {}).items():
            lines.append(
                f"    | `{name}` | {_cell(type_of(document, field))} "
                f"| {'yes' if name in required else 'no'} | {_cell(bounds_of(field))} "
                f"| {_cell(field.get('description', ''))} |"
            )
        if schema.get("additionalProperties") is False:
            lines += ["", "    Unknown fields are refused (422)."]
        example = json.dumps(example_of(document, schema), ensure_ascii=False)
        lines += ["", "    ```json", f"    {example}", "    ```", ""]
    statuses = []
    for status, response in op["responses"].items():
        if status in COMMON:
            continue
        statuses.append(f"`{status}` {_cell(response.get('description', ''))}")
    common = sorted(COMMON & set(op["responses"]))
    if common:
        statuses.append(", ".join(f"`{status}`" for status in common))
    lines += ["- **Statuses**: " + "; ".join(statuses), ""]
    return lines


def render(document: dict[str, Any]) -> str:
    families: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, operations in document["paths"].items():
        for method in METHODS:
            if method in operations:
                operation = operations[method]
                tag = (operation.get("tags") or ["other"])[0]
                families.setdefault(tag, []).append((path, method, operation))
    lines = [
        "<!-- Generated by backend/scripts/api_reference.py from the app's OpenAPI document; "
        "do not edit: change the routes or schemas, then run "
        "`cd backend && uv run python scripts/api_reference.py`. -->",
        "",
        "# API reference",
        "",
        "Every operation of the API, generated from the OpenAPI document the app serves at",
        "`/openapi.json` (Swagger UI at `/docs`, ReDoc at `/redoc`, offline). CI fails when",
        "this page differs from the document, so it cannot drift from the code.",
        "",
        "- Every path answers with and without a trailing slash (no redirect).",
        "- **Auth**: *session cookie* is the `session` cookie from `POST /api/v1/auth/login`;",
        "  on an unsafe method (POST, PUT, PATCH, DELETE) it needs `X-CSRF-Token` equal to the",
        "  `csrf_token` cookie ([Authentication](authentication.md)). *`X-API-Key`* is an API",
        "  key from `POST /api/v1/api-keys` (its scopes apply; no CSRF). Routes for",
        "  superusers say so and answer 403 to anyone else.",
        '- Every error is JSON `{"detail": ...}` with an `X-Request-ID` header. The statuses',
        "  listed last on each operation are the common ones: `413` body larger than",
        "  `MAX_REQUEST_BODY_BYTES`; `422` invalid input (`detail` names each field); `429` rate",
        "  limited (`Retry-After`, `X-RateLimit-*`, see [Rate limits](rate-limits.md)); `503` a",
        "  dependency is down or the server is saturated (`Retry-After`).",
        "- The OAuth routes exist only when the provider's client id and secret are set.",
        "- Lists are paginated: `?page=1&items_per_page=20` (capped at `MAX_PAGE_SIZE`), answered",
        "  as `{data, total_count, has_more, page, items_per_page}`.",
    ]
    for family, operations in families.items():
        title = family.replace("-", " ")
        title = f"{title[:1].upper()}{title[1:]}".replace("Api ", "API ")
        lines += ["", f"## {title}", ""]
        for path, method, operation in operations:
            lines += render_operation(document, path, method, operation)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = render(openapi_document())
    current = API_MD.read_text() if API_MD.exists() else None
    if current == text:
        return 0
    if args.check:
        print(
            "docs/api.md is stale: run `cd backend && uv run python scripts/api_reference.py`",
            file=sys.stderr,
        )
        return 1
    API_MD.write_text(text)
    print("wrote docs/api.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
