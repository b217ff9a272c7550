"""`scripts/api_reference.py`: docs/api.md is the app's OpenAPI document rendered, checked
stale in the suite, and it states each operation's auth, body fields and statuses."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from fastapi import Depends, FastAPI
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field

from tests.helpers.scripts import SCRIPTS, load_script

pytestmark = pytest.mark.unit
reference = load_script("api_reference")


def test_docs_api_md_matches_the_app():
    # A process of its own: the document is built with the OAuth providers configured.
    env = {key: os.environ[key] for key in ("PATH", "HOME", "SYSTEMROOT") if key in os.environ}
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "api_reference.py"), "--check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_route_family_and_operation_is_on_the_page():
    page = reference.API_MD.read_text()
    for heading in (
        "### `POST /api/v1/users`",
        "### `POST /api/v1/auth/login`",
        "### `PATCH /api/v1/users/{username}/tier`",
        "### `POST /api/v1/tiers/{name}/rate-limits`",
        "### `POST /api/v1/api-keys`",
        "### `GET /api/v1/auth/oauth/{provider}`",
        "### `POST /api/v1/auth/mfa/verify`",
    ):
        assert heading in page
    tier = page.split("### `PATCH /api/v1/users/{username}/tier`")[1].split("### ")[0]
    assert '{"tier_name": "string"}' in tier
    assert "| `tier_name` | string | yes |" in tier


class WidgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=2, max_length=9, description="What it is | called")
    size: int | None = Field(default=None, ge=1)


def _document() -> dict:
    app = FastAPI()
    key = APIKeyHeader(name="X-API-Key", scheme_name="apiKey")

    @app.post(
        "/widgets", status_code=201, tags=["widgets"], responses={409: {"description": "Taken"}}
    )
    async def create_widget(body: WidgetCreate, _: str = Depends(key)) -> dict:
        """Make a widget."""
        return {}

    @app.get("/widgets/{widget_id}", tags=["widgets"])
    async def read_widget(widget_id: int) -> dict:
        return {}

    return app.openapi()


def test_an_operation_is_rendered_with_auth_fields_example_and_statuses():
    page = reference.render(_document())

    create = page.split("### `POST /widgets`")[1].split("### ")[0]
    assert "Make a widget." in create
    assert "- **Auth**: `X-API-Key`" in create
    assert "| `name` | string | yes | length ≥ 2, length ≤ 9 | What it is \\| called |" in create
    assert "| `size` | integer or null | no | ≥ 1 |" in create
    assert "Unknown fields are refused (422)." in create
    assert '{"name": "string", "size": 1}' in create
    assert "`201` Successful Response" in create
    assert "`409` Taken" in create

    read = page.split("### `GET /widgets/{widget_id}`")[1]
    assert "- **Auth**: none (anonymous)" in read
    assert "| `widget_id` | path | integer | yes |" in read
    assert "Request body" not in read
    assert "## Widgets" in page


def test_a_stale_page_fails_the_check(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "api.md"
    stale.write_text("# API reference\n")
    monkeypatch.setattr(reference, "API_MD", stale)
    monkeypatch.setattr(reference, "openapi_document", _document)

    assert reference.main(["--check"]) == 1
    assert "docs/api.md is stale" in capsys.readouterr().err
    assert stale.read_text() == "# API reference\n"
    assert reference.main([]) == 0
    assert reference.main(["--check"]) == 0
