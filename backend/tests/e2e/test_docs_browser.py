"""The docs pages in a real headless Chromium, offline: /docs and /redoc render from the app's
own assets under its CSP, and a login and a CSRF-protected change made from the Swagger page
succeed (the page's request interceptor copies the CSRF cookie into the header).

Needs Debian's `chromium` and the `playwright` package (`.ci/run` installs both); the browser
is Debian's, launched through `executable_path`, so nothing is downloaded. Every request that is
not to the app is aborted and counted, so the pages are proven to need no network.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_quick_start import Server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "Quiet-Lantern-Orbit-42"

# `.ci/run` sets TEST_REQUIRE_BROWSER=1: there a missing browser is a failure, never a skip.
REQUIRED = os.environ.get("TEST_REQUIRE_BROWSER") == "1"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        not REQUIRED and not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
    pytest.mark.skipif(
        not REQUIRED and importlib.util.find_spec("playwright") is None,
        reason="needs the playwright package (uv sync installs it)",
    ),
]

# From the Swagger page: the page's own request interceptor (the one "Try it out" uses) decides
# the headers, and fetch sends the page's cookies.
_CALL = """async ([method, url, body]) => {
    const request = ui.getConfigs().requestInterceptor({method, url, headers: {
        "Content-Type": "application/json"}});
    const response = await fetch(request.url, {
        method, headers: request.headers, credentials: request.credentials,
        body: body === null ? undefined : JSON.stringify(body)});
    return [response.status, await response.text()];
}"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, {"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'docs.db'}"})
    running.start()
    yield running
    running.stop()


@pytest.fixture
def page(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(base_url=server.base_url)
        page = context.new_page()
        page.blocked = []  # type: ignore[attr-defined]
        page.problems = []  # type: ignore[attr-defined]

        def offline(route: Any) -> None:
            if route.request.url.startswith(server.base_url + "/"):
                route.continue_()
            else:
                page.blocked.append(route.request.url)  # type: ignore[attr-defined]
                route.abort()

        page.route("**/*", offline)
        page.on("pageerror", lambda error: page.problems.append(str(error)))  # type: ignore[attr-defined]
        page.on(
            "console",
            lambda message: message.type == "error" and page.problems.append(message.text),  # type: ignore[attr-defined]
        )
        try:
            yield page
        finally:
            browser.close()


@contextmanager
def screenshot_on_failure(page: Any) -> Iterator[None]:
    """A failing check leaves a screenshot of the page in a temp folder (its path printed)."""
    try:
        yield
    except BaseException:
        shot = Path(tempfile.mkdtemp(prefix="docs-browser-")) / "failure.png"
        page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot of the failing page: {shot}")
        raise


def test_swagger_ui_renders_offline_and_a_csrf_protected_call_from_it_succeeds(page: Any) -> None:
    with screenshot_on_failure(page):
        page.goto("/docs")
        patch = page.locator(".opblock-patch", has_text="/api/v1/users/{username}").first
        patch.wait_for(timeout=30_000)
        assert page.locator(".opblock").count() > 10
        assert page.locator(".opblock-post", has_text="/api/v1/auth/login").count() == 1

        user = {"name": "Alice", "username": "alice", "email": "alice@example.com"}
        status, body = page.evaluate(
            _CALL, ["POST", "/api/v1/users/", user | {"password": PASSWORD}]
        )
        assert status == 201, body
        login = {"username": "alice", "password": PASSWORD}
        status, body = page.evaluate(_CALL, ["POST", "/api/v1/auth/login", login])
        assert status == 200, body
        status, body = page.evaluate(_CALL, ["GET", "/api/v1/users/me/", None])
        assert status == 200, body
        assert '"alice"' in body, body

        assert page.problems == [], page.problems
        # Without the header the same change is refused, so the 200 below is the CSRF check
        # passing (the browser logs the 403 as a console error: expected).
        refused = page.evaluate(
            """async () => (await fetch("/api/v1/users/alice", {method: "PATCH",
                headers: {"Content-Type": "application/json"}, body: '{"name": "X"}'})).status"""
        )
        assert refused == 403
        del page.problems[:]
        status, body = page.evaluate(_CALL, ["PATCH", "/api/v1/users/alice", {"name": "Alice B"}])
        assert status == 200, body
        assert '"Alice B"' in body

        assert page.blocked == [], "the page asked for something outside the app"
        assert page.problems == [], page.problems


def test_redoc_renders_offline(page: Any) -> None:
    with screenshot_on_failure(page):
        page.goto("/redoc")
        page.get_by_text("/api/v1/auth/login").first.wait_for(state="attached", timeout=30_000)
        assert page.locator("redoc .menu-content").count() == 1
        assert page.blocked == [], "the page asked for something outside the app"
        # ReDoc's "API docs by Redocly" badge points at its CDN: the CSP blocks it, the
        # page does not need it. Anything else is a problem.
        problems = [text for text in page.problems if "cdn.redoc.ly/redoc/logo" not in text]
        assert problems == [], problems
