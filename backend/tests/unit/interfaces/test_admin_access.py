"""Who may use the admin panel (`can_use_admin`) and each view (`can_use_view`)."""

from __future__ import annotations

import pytest

from src.interfaces.admin.access import can_use_admin, can_use_view
from src.interfaces.admin.views import (
    ApiKeyAdmin,
    AuditEventAdmin,
    RateLimitAdmin,
    RoleAdmin,
    SessionAdmin,
    TierAdmin,
    UserAdmin,
)
from tests.helpers.factories import make_principal

pytestmark = pytest.mark.unit


def test_superusers_may_use_the_admin_panel_and_every_view() -> None:
    superuser = make_principal(is_superuser=True)
    assert can_use_admin(superuser)
    for view in (UserAdmin, SessionAdmin, TierAdmin, AuditEventAdmin):
        assert can_use_view(superuser, view.permissions)


def test_holders_of_admin_access_may_use_the_panel() -> None:
    assert can_use_admin(make_principal(permissions=frozenset({"admin.access"})))


def test_other_users_may_not() -> None:
    assert not can_use_admin(make_principal(is_superuser=False))
    assert not can_use_admin(make_principal(permissions=frozenset({"tier.manage"})))


def test_a_view_needs_its_own_permissions_too() -> None:
    manager = make_principal(permissions=frozenset({"admin.access", "tier.manage"}))
    assert can_use_view(manager, TierAdmin.permissions)
    for view in (RateLimitAdmin, ApiKeyAdmin, RoleAdmin, AuditEventAdmin):
        assert not can_use_view(manager, view.permissions), view
    # Without admin.access a permission alone opens nothing.
    assert not can_use_view(
        make_principal(permissions=frozenset({"tier.manage"})), ("tier.manage",)
    )


def test_users_and_sessions_are_for_superusers_only() -> None:
    """A password set or a session ended there can take over any account: no role opens them."""
    everything = make_principal(
        permissions=frozenset({"admin.access", "user.read", "user.update", "apikey.admin"})
    )
    assert not can_use_view(everything, UserAdmin.permissions)
    assert not can_use_view(everything, SessionAdmin.permissions)
