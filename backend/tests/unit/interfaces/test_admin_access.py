"""Who may use the admin panel: the one rule (`can_use_admin`)."""

from __future__ import annotations

import pytest

from src.interfaces.admin.access import can_use_admin
from tests.helpers.factories import make_principal

pytestmark = pytest.mark.unit


def test_superusers_may_use_the_admin_panel() -> None:
    assert can_use_admin(make_principal(is_superuser=True))


def test_other_users_may_not() -> None:
    assert not can_use_admin(make_principal(is_superuser=False))
