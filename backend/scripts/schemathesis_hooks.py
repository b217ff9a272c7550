"""Schemathesis hooks of `scripts/api_contract.py`: sign in as the run's role, and again after
anything the fuzzer did ended the session.

With `CONTRACT_ROLE` set (`user` or `superuser`), every request carries a live session cookie
and the matching `X-CSRF-Token`. The fuzzer is free to call the routes that end sessions or
accounts (logout, logout-all, revoking a session, deleting or renaming the account it is
signed in as, which the stateful phase finds through `GET /users/me`): a 401 makes Schemathesis
ask for credentials again (`retry_on`), and this provider signs in again, creating a fresh
account first when the old one can no longer sign in (a new user through the sign-up route, a
new superuser with `app create-superuser`).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import schemathesis

BASE_URL = os.environ.get("CONTRACT_BASE_URL", "")
ROLE = os.environ.get("CONTRACT_ROLE", "")
PASSWORD = os.environ.get("CONTRACT_PASSWORD", "")
USERNAME = os.environ.get("CONTRACT_USERNAME", "")
APP = Path(sys.executable).with_name("app")
# The server trusts one proxy hop: sign-ins come "from" an address of their own, so the login
# throttle's per-IP lockout, which the fuzzer's wrong passwords trip, never locks them out.
SIGN_IN_HEADERS = {"X-Forwarded-For": "198.51.100.7"}


class Account:
    def __init__(self) -> None:
        self.username = USERNAME
        self.generation = itertools.count(1)

    def sign_in(self) -> tuple[str, str] | None:
        with httpx.Client(base_url=BASE_URL, timeout=20, headers=SIGN_IN_HEADERS) as browser:
            response = browser.post(
                "/api/v1/auth/login", json={"username": self.username, "password": PASSWORD}
            )
            if response.status_code != 200:
                return None
            return browser.cookies["session"], browser.cookies["csrf_token"]

    def create(self) -> None:
        """A new account of the role: the old one was deleted or renamed."""
        self.username = f"{USERNAME}{next(self.generation)}"
        email = f"{self.username}@example.com"
        if ROLE == "superuser":
            subprocess.run(
                [
                    str(APP),
                    "create-superuser",
                    f"--username={self.username}",
                    f"--email={email}",
                    f"--password={PASSWORD}",
                ],
                check=True,
                capture_output=True,
                cwd=os.environ.get("HOME"),
            )
        else:
            httpx.post(
                f"{BASE_URL}/api/v1/users",
                headers=SIGN_IN_HEADERS,
                json={"name": "Fuzz", "username": self.username, "email": email}
                | {"password": PASSWORD},
                timeout=20,
            ).raise_for_status()


if ROLE:
    account = Account()

    @schemathesis.auth(retry_on=[401])
    class SessionAuth:
        def get(self, case: Any, ctx: Any) -> tuple[str, str]:
            signed_in = account.sign_in()
            if signed_in is None:
                account.create()
                signed_in = account.sign_in()
            if signed_in is None:
                raise RuntimeError(f"cannot sign in as {account.username}")
            return signed_in

        def set(self, case: Any, data: tuple[str, str], ctx: Any) -> None:
            session, csrf = data
            case.headers = {
                **(case.headers or {}),
                "Cookie": f"session={session}; csrf_token={csrf}",
                "X-CSRF-Token": csrf,
            }
