"""The admin panel in a real headless Chromium, offline, under its CSP: a superuser signs in,
lists and searches users, creates and edits a tier, revokes a session (whose next API call is
a 401); a plain user is refused. Every request outside the app is aborted and counted, and any
console error (a CSP violation among them) fails the test.

The browser, the offline guard and the failure screenshots are `test_docs_browser`'s; the live
server is `test_quick_start.Server` (its default database session store: session rows).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.test_docs_browser import (
    PASSWORD,
    page,  # noqa: F401 - the fixture, on this module's `server`
    pytestmark,  # noqa: F401 - needs chromium and playwright, like the docs test
    screenshot_on_failure,
)
from tests.e2e.test_quick_start import APP, Server

BOSS = {"username": "boss", "email": "boss@example.com"}
PLAIN = {"name": "Plain", "username": "plainuser", "email": "plain@example.com"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One live server for the module (each test signs in with a fresh browser)."""
    tmp_path = tmp_path_factory.mktemp("admin")
    database = f"sqlite+aiosqlite:///{tmp_path / 'admin.db'}"
    running = Server(tmp_path, {"DATABASE_URL": database})
    running.start()  # migrates and seeds the default tier
    subprocess.run(
        [
            str(APP),
            "create-superuser",
            "--username",
            BOSS["username"],
            "--email",
            BOSS["email"],
            "--password",
            PASSWORD,
        ],
        cwd=tmp_path,
        env=os.environ | {"DATABASE_URL": database},
        check=True,
        capture_output=True,
    )
    created = httpx.post(
        f"{running.base_url}/api/v1/users/", json=PLAIN | {"password": PASSWORD}, timeout=60
    )
    assert created.status_code == 201, created.text
    yield running
    running.stop()


def sign_in(page: Any, username: str) -> None:  # noqa: F811 - the page object
    page.set_default_timeout(60_000)  # a loaded CI machine: slow, not broken
    page.goto("/admin/")
    assert page.url.endswith("/admin/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")


def test_a_superuser_manages_users_tiers_and_sessions(page: Any, server: Server) -> None:  # noqa: F811
    with screenshot_on_failure(page), httpx.Client(base_url=server.base_url, timeout=60) as user:
        assert (
            user.post(
                "/api/v1/auth/login", json={"username": PLAIN["username"], "password": PASSWORD}
            ).status_code
            == 200
        )
        session_id = user.get("/api/v1/auth/me").json()["session_id"]

        sign_in(page, BOSS["username"])
        page.wait_for_url("**/admin/")
        page.get_by_role("link", name="Users").click()
        page.wait_for_url("**/admin/user/list")
        assert page.locator("td", has_text=PLAIN["email"]).count() == 1
        page.fill("#search-input", "plain@")
        page.click("#search-button")
        page.wait_for_url("**search=plain%40*")
        assert page.locator("td", has_text=PLAIN["email"]).count() == 1
        assert page.locator("td", has_text=BOSS["email"]).count() == 0

        page.goto("/admin/tier/create")
        page.fill("#name", "gold")
        page.click("input[value=Save]")
        page.wait_for_url("**/admin/tier/list")
        page.locator("tr", has_text="gold").locator("a[href*='/edit/']").click()
        page.fill("#name", "platinum")
        page.click("input[value=Save]")
        page.wait_for_url("**/admin/tier/list")
        assert page.locator("td", has_text="platinum").count() == 1
        assert user.get("/api/v1/tiers/platinum").status_code == 200

        page.goto(f"/admin/user-session/details/{session_id}")
        page.get_by_role("link", name="Revoke").click()
        page.click("#confirm-action")
        page.wait_for_url("**/admin/user-session/list")
        assert page.locator("td", has_text=session_id).count() == 0
        assert user.get("/api/v1/users/me").status_code == 401

        page.get_by_text("Logout").click()
        page.click("#sign-out")
        page.wait_for_url("**/admin/login")
        assert page.blocked == [], "the page asked for something outside the app"
        assert page.problems == [], page.problems


def test_a_form_used_before_the_page_finished_loading_is_accepted(
    page: Any,  # noqa: F811 - the page object
    server: Server,
) -> None:
    """`admin.js` arms each form with its CSRF token. On a slow network a user can fill and
    send a form before a script at the end of the page has run (seen in CI under load: a
    403 "stale CSRF token"); the script loads, blocking, from the head, so no form exists
    before it runs. Here it is held back while the page loads: the form is used at the
    first moment it can be, and must be accepted."""
    with screenshot_on_failure(page):
        sign_in(page, BOSS["username"])
        page.wait_for_url("**/admin/")
        held: list[Any] = []
        page.route("**/admin.js", lambda route: held.append(route))
        page.goto("/admin/tier/create", wait_until="commit")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not page.locator("#name").count():
            page.wait_for_timeout(100)  # the browser goes on; the script stays held
        if page.locator("#name").count():  # usable before its script ran: use it now
            page.fill("#name", "early")
            page.click("input[value=Save]")
        assert held, "the page asked for admin.js"
        for route in held:
            route.fallback()
        page.unroute("**/admin.js")
        if not page.url.endswith("/admin/tier/list"):
            page.fill("#name", "early")
            page.click("input[value=Save]")
        page.wait_for_url("**/admin/tier/list")
        assert page.locator("td", has_text="early").count() == 1


def test_a_plain_user_is_refused(page: Any, server: Server) -> None:  # noqa: F811
    with screenshot_on_failure(page):
        sign_in(page, PLAIN["username"])
        page.get_by_text("may not use the admin panel").first.wait_for()
        page.goto("/admin/user/list")
        assert page.url.endswith("/admin/login")
        assert page.blocked == [], "the page asked for something outside the app"
        # The refusal is a 403 the browser logs; nothing else may go wrong.
        problems = [text for text in page.problems if "403" not in text]
        assert problems == [], problems
