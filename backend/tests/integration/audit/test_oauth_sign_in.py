"""An OAuth sign-in is on the audit log like a password one, with its provider."""

from __future__ import annotations

import pytest

from src.infrastructure.database.session import get_sessionmaker
from tests.integration.audit.helpers import CLIENT_IP, events
from tests.integration.auth import test_oauth as oauth

# The OAuth tests' fixtures: an app with the providers configured against the fake one.
app, fake, web, at_provider = oauth.app, oauth.fake, oauth.web, oauth.at_provider

pytestmark = pytest.mark.integration


async def test_an_oauth_sign_in_is_recorded(web, at_provider):
    response = await oauth.sign_in(web, at_provider, "google")
    assert response.status_code == 303
    me = (await web.get("/api/v1/users/me")).json()

    async with get_sessionmaker()() as db:
        [event] = await events(db, "auth.login.succeeded")
        [linked] = await events(db, "auth.oauth_linked")
    assert linked.data == {"provider": "google", "new_user": True, "claimed_unverified": False}
    assert (linked.actor_id, linked.target_user_id, linked.request_id) == (
        me["id"],
        me["id"],
        event.request_id,
    )
    assert event.data == {"method": "oauth:google"}
    assert (event.actor_id, event.target_user_id, event.ip) == (me["id"], me["id"], CLIENT_IP)
    assert event.request_id


async def test_taking_over_an_unverified_account_is_recorded(web, at_provider, db_engine):
    squatter = await oauth.password_user(db_engine, email="ada@example.com", verified=False)
    assert (await oauth.sign_in(web, at_provider, "google")).status_code == 303

    async with get_sessionmaker()() as db:
        [linked] = await events(db, "auth.oauth_linked")
    assert linked.target_user_id == squatter["id"]
    assert linked.data == {"provider": "google", "new_user": False, "claimed_unverified": True}
