"""The pieces of OAuth sign-in that need no provider: the redirect_to rule, the sealed flow
cookie, the PKCE verifier derivation, usernames for new users, half-configured providers."""

from __future__ import annotations

import re
from unittest.mock import AsyncMock

import pytest

from src.infrastructure.auth import tokens
from src.infrastructure.auth.tokens import derived_secret, seal, unseal
from src.infrastructure.config import Settings
from src.infrastructure.security.validator import find_problems
from src.modules.auth.oauth.service import safe_redirect_path
from src.modules.user.service import UserService

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value",
    [
        "//evil.example",
        "//evil.example/path",
        "https://evil.example",
        "http:/evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/ /evil.example",
        "evil.example",
        "javascript:alert(1)",
        "",
        None,
        "/" + "a" * 2048,
    ],
)
def test_redirect_to_outside_this_origin_falls_back_to_the_root(value):
    assert safe_redirect_path(value) == "/"


@pytest.mark.parametrize("value", ["/", "/dashboard", "/a/b?c=d&e=%2F%2Fx#frag", "/a//b"])
def test_redirect_to_keeps_same_origin_paths(value):
    assert safe_redirect_path(value) == value


def test_a_sealed_value_reads_back_until_it_expires(monkeypatch):
    sealed = seal("oauth_flow", {"state": "s", "redirect_to": "/x"}, ttl_seconds=600)
    payload, expires = unseal("oauth_flow", sealed) or ({}, 0)
    assert payload == {"state": "s", "redirect_to": "/x"}

    now = tokens.time.time()
    monkeypatch.setattr(tokens.time, "time", lambda: now + 601)
    assert expires <= tokens.time.time()
    assert unseal("oauth_flow", sealed) is None


def test_a_sealed_value_is_bound_to_its_purpose_and_cannot_be_altered():
    sealed = seal("oauth_flow", {"redirect_to": "/x"}, ttl_seconds=600)
    body, _, signature = sealed.partition(".")
    forged = seal("other", {"redirect_to": "//evil.example"}, ttl_seconds=600).partition(".")[0]

    assert unseal("another_purpose", sealed) is None
    assert unseal("oauth_flow", f"{forged}.{signature}") is None
    flipped = signature[:-1] + ("1" if signature.endswith("0") else "0")
    assert unseal("oauth_flow", f"{body}.{flipped}") is None
    for garbage in (None, "", ".", "abc", "abc.def", sealed + "x"):
        assert unseal("oauth_flow", garbage) is None


@pytest.mark.parametrize(
    "body",
    [
        "!!!",  # not base64
        "bm90IGpzb24",  # not JSON
        "eyJleHAiOiAxfQ",  # no payload
        "eyJleHAiOiA0MTAyNDQ0ODAwLCAiZGF0YSI6IFsxXX0",  # a payload that is not a mapping
        "eyJleHAiOiA0MTAyNDQ0ODAwLCAiZGF0YSI6IHsiYSI6IDF9fQ",  # a value that is not a string
    ],
)
def test_a_malformed_sealed_value_is_refused_even_when_signed(body):
    assert unseal("oauth_flow", f"{body}.{tokens._mac('seal:oauth_flow', body)}") is None


def test_the_pkce_verifier_is_derived_per_state_and_valid_for_rfc_7636():
    verifier = derived_secret("oauth_pkce", "state-1")

    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    assert verifier == derived_secret("oauth_pkce", "state-1")
    assert verifier != derived_secret("oauth_pkce", "state-2")
    assert verifier != derived_secret("other", "state-1")


@pytest.mark.parametrize(
    ("hint", "expected"),
    [
        ("Ada.Lovelace", "ada.lovelace"),
        ("ada+news", "ada_news"),
        ("__ada__", "ada"),
        ("jo", "userjo"),
        ("", "user"),
        ("x" * 40, "x" * 24),
    ],
)
async def test_a_new_username_follows_the_hint(mocker, hint, expected):
    crud = mocker.patch("src.modules.user.service.crud_users")
    crud.exists = AsyncMock(return_value=False)

    assert await UserService()._available_username(AsyncMock(), hint) == expected


async def test_a_taken_or_reserved_username_gets_a_suffix(mocker):
    crud = mocker.patch("src.modules.user.service.crud_users")
    crud.exists = AsyncMock(side_effect=lambda db, username: username == "ada")

    assert re.fullmatch(r"ada-\d{4}", await UserService()._available_username(AsyncMock(), "ada"))
    admin = await UserService()._available_username(AsyncMock(), "admin")
    assert re.fullmatch(r"admin-\d{4}", admin)  # "admin" is reserved


@pytest.mark.parametrize("half", ["OAUTH_GOOGLE_CLIENT_ID", "OAUTH_GITHUB_CLIENT_SECRET"])
def test_half_a_provider_configuration_is_refused(half):
    problems = find_problems(Settings(**{half: "set"}))
    assert len(problems) == 1
    assert "must be set together" in problems[0]
