"""The OAuth providers this app can sign users in with, and what each says about a user.

- `google`: OpenID Connect without discovery (the standard endpoints are settings): the
  authorization-code flow with the `openid email profile` scopes, then the userinfo endpoint
  (`sub`, `email`, `email_verified`, `name`).
- `github`: OAuth 2 (an OAuth app) with `read:user user:email`, then the REST API: `/user`
  (the numeric id, the login, the name) and `/user/emails` (each address with its `verified`
  flag; the primary one is the account's address).

A provider is offered only when both its client id and secret are set; every endpoint URL is a
setting. HTTP goes through Authlib's httpx client (`AsyncOAuth2Client`, on `httpx2`, the HTTP
client Authlib resolves when it is installed) built by `client()`; `transport` is the hook
tests set to serve a fake provider in-process (an `httpx2.ASGITransport`), never the network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.integrations.httpx_client import AsyncOAuth2Client
from pydantic import BaseModel, ConfigDict

from src.infrastructure.config import settings

# Tests set this to serve the providers from a fake, in-process app; None = the network.
transport: httpx2.AsyncBaseTransport | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in."""

    subject: str  # the provider's stable id for the account
    email: str | None
    email_verified: bool  # the provider vouches that the account owner controls `email`
    name: str | None
    username_hint: str  # what a new user's username is derived from


IdentityFetcher = Callable[[AsyncOAuth2Client, "Provider"], Awaitable[Identity]]


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    scope: str
    token_endpoint_auth_method: str
    userinfo_url: str  # google: the userinfo endpoint; github: `/user`
    emails_url: str | None  # github: `/user/emails`
    fetch_identity: IdentityFetcher


class ProviderResponseError(Exception):
    """The provider answered something unusable (an error status, a malformed profile)."""


def client(provider: Provider, *, redirect_uri: str) -> AsyncOAuth2Client:
    """Authlib's async client for `provider`: PKCE with S256, the provider's client
    authentication, bounded waits. Use it as an async context manager (it owns a pool)."""
    options: dict[str, Any] = {"timeout": settings.OAUTH_HTTP_TIMEOUT_SECONDS}
    if transport is not None:
        options["transport"] = transport
    return AsyncOAuth2Client(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        token_endpoint_auth_method=provider.token_endpoint_auth_method,
        scope=provider.scope,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        **options,
    )


async def _get_json(http: AsyncOAuth2Client, url: str, **headers: str) -> Any:
    response = await http.get(url, headers=headers)
    if response.status_code != 200:
        raise ProviderResponseError(f"{url} answered {response.status_code}")
    try:
        return response.json()
    except ValueError:
        raise ProviderResponseError(f"{url} answered something that is not JSON") from None


class _GoogleUserInfo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sub: str
    email: str | None = None
    email_verified: bool = False
    name: str | None = None


async def _google_identity(http: AsyncOAuth2Client, provider: Provider) -> Identity:
    info = _GoogleUserInfo.model_validate(await _get_json(http, provider.userinfo_url))
    return Identity(
        subject=info.sub,
        email=info.email,
        email_verified=info.email_verified,
        name=info.name,
        username_hint=(info.email or "").partition("@")[0],
    )


class _GitHubUser(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int
    login: str
    name: str | None = None


class _GitHubEmail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    email: str
    primary: bool = False
    verified: bool = False


GITHUB_JSON = "application/vnd.github+json"


async def _github_identity(http: AsyncOAuth2Client, provider: Provider) -> Identity:
    user = _GitHubUser.model_validate(
        await _get_json(http, provider.userinfo_url, accept=GITHUB_JSON)
    )
    listed = await _get_json(http, provider.emails_url or "", accept=GITHUB_JSON)
    if not isinstance(listed, list):
        raise ProviderResponseError("/user/emails did not answer a list")
    emails = [_GitHubEmail.model_validate(entry) for entry in listed]
    # The account's address is its primary one, trusted only when GitHub verified it.
    primary = next((entry for entry in emails if entry.primary), None)
    return Identity(
        subject=str(user.id),
        email=primary.email if primary else None,
        email_verified=bool(primary and primary.verified),
        name=user.name or user.login,
        username_hint=user.login,
    )


def configured_providers() -> dict[str, Provider]:
    """The providers whose client id and secret are both set (read from the settings on each
    call, so an app built without any has no OAuth routes at all)."""
    providers: dict[str, Provider] = {}
    if settings.OAUTH_GOOGLE_CLIENT_ID and settings.OAUTH_GOOGLE_CLIENT_SECRET:
        providers["google"] = Provider(
            name="google",
            client_id=settings.OAUTH_GOOGLE_CLIENT_ID,
            client_secret=settings.OAUTH_GOOGLE_CLIENT_SECRET.get_secret_value(),
            authorize_url=settings.OAUTH_GOOGLE_AUTHORIZE_URL,
            token_url=settings.OAUTH_GOOGLE_TOKEN_URL,
            scope="openid email profile",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
            userinfo_url=settings.OAUTH_GOOGLE_USERINFO_URL,
            emails_url=None,
            fetch_identity=_google_identity,
        )
    if settings.OAUTH_GITHUB_CLIENT_ID and settings.OAUTH_GITHUB_CLIENT_SECRET:
        providers["github"] = Provider(
            name="github",
            client_id=settings.OAUTH_GITHUB_CLIENT_ID,
            client_secret=settings.OAUTH_GITHUB_CLIENT_SECRET.get_secret_value(),
            authorize_url=settings.OAUTH_GITHUB_AUTHORIZE_URL,
            token_url=settings.OAUTH_GITHUB_TOKEN_URL,
            scope="read:user user:email",
            token_endpoint_auth_method="client_secret_post",  # noqa: S106 - a method name
            userinfo_url=settings.OAUTH_GITHUB_USER_URL,
            emails_url=settings.OAUTH_GITHUB_EMAILS_URL,
            fetch_identity=_github_identity,
        )
    return providers
