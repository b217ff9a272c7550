"""Every email template renders with the context its task passes, HTML is escaped, text not."""

from __future__ import annotations

import pytest
from jinja2 import UndefinedError

from src.infrastructure.config import settings
from src.infrastructure.email import describe_duration, render_email
from src.infrastructure.email.templates import TEMPLATES_DIR

CONTEXTS = {
    "welcome": {
        "name": "Ann",
        "verify_url": "http://x/verify-email?token=t",
        "valid_for": "1 hour",
    },
    "verify_email": {"name": "Ann", "url": "http://x/v?token=t", "valid_for": "1 hour"},
    "reset_password": {"name": "Ann", "url": "http://x/r?token=t", "valid_for": "1 hour"},
    "change_email": {"name": "Ann", "url": "http://x/c?token=t", "valid_for": "1 hour"},
    "email_changed": {"name": "Ann", "new_email": "new@example.com"},
    "email_in_use": {},
    "security_notice": {"name": "Ann", "event": "two-factor authentication was turned on"},
    "password_changed": {"name": "Ann", "reset": True},
}


@pytest.mark.unit
def test_every_shipped_template_is_covered_here():
    names = {path.name.split(".")[0] for path in TEMPLATES_DIR.glob("*.txt")}
    assert names == set(CONTEXTS)


@pytest.mark.unit
@pytest.mark.parametrize("template", sorted(CONTEXTS))
def test_each_email_renders_text_and_html(template):
    message = render_email(template, to="ann@example.com", **CONTEXTS[template])

    assert message.to == "ann@example.com"
    assert message.subject
    assert "\n" not in message.subject
    assert settings.APP_NAME in message.text
    assert message.html is not None
    assert message.html.lstrip().startswith("<!doctype html>")
    for value in CONTEXTS[template].values():
        if isinstance(value, str) and value.startswith("http"):
            assert value in message.text
            assert f'href="{value}"' in message.html


@pytest.mark.unit
def test_html_is_escaped_and_text_is_not():
    message = render_email("email_changed", to="a@example.com", name="<b>Ann</b>", new_email="x")

    assert "Hi <b>Ann</b>" in message.text
    assert "&lt;b&gt;Ann&lt;/b&gt;" in message.html
    assert "<b>Ann</b>" not in message.html


@pytest.mark.unit
def test_a_missing_variable_is_an_error_not_a_blank():
    with pytest.raises(UndefinedError):
        render_email("reset_password", to="a@example.com", name="Ann")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (3600, "1 hour"),
        (172800, "48 hours"),
        (1800, "30 minutes"),
        (60, "1 minute"),
        (5, "1 minute"),
    ],
)
def test_durations_read_as_words(seconds, words):
    assert describe_duration(seconds) == words
