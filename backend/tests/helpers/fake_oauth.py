"""A fake OAuth 2 / OpenID Connect provider, served in-process (no network): Google's shape
(authorize, token, userinfo) under `/google`, GitHub's (authorize, token, `/user`,
`/user/emails`) under `/github`.

It behaves like a real provider where the app's security depends on it: the authorization
request must carry an S256 PKCE challenge; the token endpoint authenticates the client (HTTP
Basic for Google, form fields for GitHub), accepts a code once, only with the same
redirect URI, and only with the verifier whose S256 hash is the challenge; the profile
endpoints need the access token. The signed-in account consents at once: the authorize
endpoint redirects straight back with a code, or with `error=access_denied` when `deny` is
set.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

ORIGIN = "http://provider.test"
CLIENTS = {
    "google": ("google-client-id", "google-client-secret"),
    "github": ("github-client-id", "github-client-secret"),
}


def settings_for(*providers: str) -> dict[str, str]:
    """The app settings that configure `providers` against this fake."""
    values: dict[str, str] = {}
    if "google" in providers:
        values |= {
            "OAUTH_GOOGLE_CLIENT_ID": CLIENTS["google"][0],
            "OAUTH_GOOGLE_CLIENT_SECRET": CLIENTS["google"][1],
            "OAUTH_GOOGLE_AUTHORIZE_URL": f"{ORIGIN}/google/authorize",
            "OAUTH_GOOGLE_TOKEN_URL": f"{ORIGIN}/google/token",
            "OAUTH_GOOGLE_USERINFO_URL": f"{ORIGIN}/google/userinfo",
        }
    if "github" in providers:
        values |= {
            "OAUTH_GITHUB_CLIENT_ID": CLIENTS["github"][0],
            "OAUTH_GITHUB_CLIENT_SECRET": CLIENTS["github"][1],
            "OAUTH_GITHUB_AUTHORIZE_URL": f"{ORIGIN}/github/login/oauth/authorize",
            "OAUTH_GITHUB_TOKEN_URL": f"{ORIGIN}/github/login/oauth/access_token",
            "OAUTH_GITHUB_USER_URL": f"{ORIGIN}/github/api/user",
            "OAUTH_GITHUB_EMAILS_URL": f"{ORIGIN}/github/api/user/emails",
        }
    return values


@dataclass
class Account:
    """The account signed in at the fake provider."""

    subject: str  # Google's `sub`; GitHub's numeric id (digits)
    email: str
    email_verified: bool = True
    name: str = "Ada Lovelace"
    login: str = "ada"  # GitHub only


@dataclass
class Grant:
    provider: str
    account: Account
    redirect_uri: str
    challenge: str


@dataclass
class FakeProvider:
    account: Account | None = None
    deny: bool = False
    fail_token_endpoint: bool = False
    grants: dict[str, Grant] = field(default_factory=dict)  # unused codes
    tokens: dict[str, tuple[str, Account]] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # why token requests were refused

    def __post_init__(self) -> None:
        self.app = self._build()

    # --- the endpoints ---------------------------------------------------------------------

    def _authorize(self, provider: str, request: Request) -> RedirectResponse | JSONResponse:
        query = dict(request.query_params)
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        problems = [
            query.get("client_id") != CLIENTS[provider][0] and "unknown client",
            query.get("response_type") != "code" and "not the code flow",
            query.get("code_challenge_method") != "S256" and "no S256 PKCE challenge",
            not query.get("code_challenge") and "no PKCE challenge",
            not redirect_uri and "no redirect_uri",
        ]
        if any(problems):
            return JSONResponse({"error": "invalid_request", "problems": problems}, 400)
        back: dict[str, str] = {"state": query.get("state", "")}
        if self.deny or self.account is None:
            back["error"] = "access_denied"
        else:
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(provider, self.account, redirect_uri, query["code_challenge"])
            back["code"] = code
        return RedirectResponse(f"{redirect_uri}?{urlencode(back)}", status_code=302)

    async def _token(self, provider: str, request: Request) -> JSONResponse:
        form = {key: str(value) for key, value in (await request.form()).items()}
        self.token_requests.append(form)
        if self.fail_token_endpoint:
            return JSONResponse({"error": "server_error"}, 503)
        client_id, client_secret = self._client_credentials(provider, request, form)
        if (client_id, client_secret) != CLIENTS[provider]:
            return self._refuse(provider, "invalid_client", "bad client credentials")
        grant = self.grants.pop(form.get("code", ""), None)  # a code works once
        if grant is None or grant.provider != provider:
            return self._refuse(provider, "invalid_grant", "unknown or used code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return self._refuse(provider, "invalid_grant", "redirect_uri mismatch")
        if s256(form.get("code_verifier", "")) != grant.challenge:
            return self._refuse(provider, "invalid_grant", "PKCE verifier mismatch")
        token = secrets.token_urlsafe(16)
        self.tokens[token] = (provider, grant.account)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _client_credentials(
        self, provider: str, request: Request, form: dict[str, str]
    ) -> tuple[str, str]:
        if provider == "github":  # client_secret_post
            return form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return "", ""
        client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
        return client_id, secret

    def _refuse(self, provider: str, error: str, why: str) -> JSONResponse:
        self.refusals.append(why)
        # GitHub answers token errors with 200 and an error body; Google with a 400.
        status = 200 if provider == "github" else 400
        return JSONResponse({"error": error, "error_description": why}, status)

    def _account(self, provider: str, request: Request) -> Account | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = self.tokens.get(token) if scheme.lower() == "bearer" else None
        return found[1] if found and found[0] == provider else None

    def _build(self) -> FastAPI:
        app = FastAPI()
        unauthorized = JSONResponse({"message": "Bad credentials"}, 401)

        @app.get("/google/authorize")
        async def google_authorize(request: Request) -> Any:
            return self._authorize("google", request)

        @app.post("/google/token")
        async def google_token(request: Request) -> Any:
            return await self._token("google", request)

        @app.get("/google/userinfo")
        async def google_userinfo(request: Request) -> Any:
            account = self._account("google", request)
            if account is None:
                return unauthorized
            return {
                "sub": account.subject,
                "email": account.email,
                "email_verified": account.email_verified,
                "name": account.name,
            }

        @app.get("/github/login/oauth/authorize")
        async def github_authorize(request: Request) -> Any:
            return self._authorize("github", request)

        @app.post("/github/login/oauth/access_token")
        async def github_token(request: Request) -> Any:
            return await self._token("github", request)

        @app.get("/github/api/user")
        async def github_user(request: Request) -> Any:
            account = self._account("github", request)
            if account is None:
                return unauthorized
            return {"id": int(account.subject), "login": account.login, "name": account.name}

        @app.get("/github/api/user/emails")
        async def github_emails(request: Request) -> Any:
            account = self._account("github", request)
            if account is None:
                return unauthorized
            return [
                {
                    "email": f"{account.login}@users.noreply.github.com",
                    "primary": False,
                    "verified": True,
                    "visibility": None,
                },
                {
                    "email": account.email,
                    "primary": True,
                    "verified": account.email_verified,
                    "visibility": "private",
                },
            ]

        return app


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
