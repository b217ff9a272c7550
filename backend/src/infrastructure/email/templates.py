"""Emails rendered from Jinja2 templates in `src/templates/email/`.

Each email `<name>` is three files: `<name>.subject.txt`, `<name>.txt` (the plain-text body)
and `<name>.html` (the HTML alternative, autoescaped, usually extending `_layout.html`). Every
template gets `app_name`; a variable a template uses but the caller did not pass is an error
(`StrictUndefined`), so a typo fails the test that renders it instead of mailing a blank.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    select_autoescape,
)

from src.infrastructure.config import settings
from src.infrastructure.email.message import EmailMessage

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates" / "email"


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # .html templates are escaped, .txt ones are not (plain text has nothing to escape).
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
    )


def render_email(template: str, /, *, to: str, **context: Any) -> EmailMessage:
    """The email `template` addressed to `to`, rendered with `context`."""
    values = {"app_name": settings.APP_NAME, **context}
    env = _environment()
    subject = " ".join(env.get_template(f"{template}.subject.txt").render(values).split())
    body = env.get_template(f"{template}.txt").render(values)
    try:
        html: str | None = env.get_template(f"{template}.html").render(values)
    except TemplateNotFound:
        html = None
    return EmailMessage(to=to, subject=subject, text=body, html=html)


def describe_duration(seconds: int) -> str:
    """ "48 hours", "1 hour", "30 minutes": how long a link works, in words."""
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
