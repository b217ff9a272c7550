"""Generate `backend/.env.example` and `docs/configuration.md` from the settings class.

    cd backend && uv run python scripts/settings_reference.py           # rewrite both files
    cd backend && uv run python scripts/settings_reference.py --check   # exit 1 when stale

The single source is `src/infrastructure/config/settings.py`: each field's name, type, default
and `Field(description=...)` (a field without a description is an error), grouped under the
`# --- section ---` comments of that file. Secrets (`SecretStr`) never show their default.
`tests/unit/test_settings_reference.py` runs `--check` in the suite, so a setting added,
renamed or re-documented without regenerating fails CI.

Hand-written rather than settings-doc (PyPI), which renders a `BaseSettings` class through
Jinja templates of its own: the grouping by the source's section comments, the table layout,
the masking of secret defaults and the `--check` mode would each have needed custom templates
and a wrapper, which is most of these few functions over `model_fields`.
"""

from __future__ import annotations

import argparse
import enum
import re
import sys
import textwrap
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings

BACKEND = Path(__file__).resolve().parents[1]
ROOT = BACKEND.parent
SETTINGS_SOURCE = BACKEND / "src" / "infrastructure" / "config" / "settings.py"
ENV_EXAMPLE = BACKEND / ".env.example"
CONFIGURATION_MD = ROOT / "docs" / "configuration.md"

_SECTION = re.compile(r"^\s+# --- (?P<title>.+?) -+\s*$")
_FIELD = re.compile(r"^\s+(?P<name>[A-Z][A-Z0-9_]*)\s*:")
WIDTH = 98


@dataclass(frozen=True)
class Setting:
    section: str
    name: str
    type: str
    default: str  # as written in .env ("" = unset / use the built-in default; "***" = a secret)
    secret: bool
    description: str


def sections_of(source: str) -> dict[str, str]:
    """Field name -> the title of the `# --- title ---` comment above it."""
    section, found = "", {}
    for line in source.splitlines():
        if match := _SECTION.match(line):
            section = match["title"]
        elif (match := _FIELD.match(line)) and section:
            found[match["name"]] = section
    return found


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def type_name(annotation: Any) -> str:
    """A reader's name for a field's type: `int`, `int or empty`, `one of: a, b`."""
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        return f"{type_name(rest[0])} or empty"
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is Literal:
        return "one of: " + ", ".join(str(arg) for arg in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of: " + ", ".join(str(member.value) for member in annotation)
    if annotation is SecretStr:
        return "secret"
    if origin is list:
        return f"list of {type_name(args[0])} (comma separated)"
    return getattr(annotation, "__name__", str(annotation))


def env_value(value: Any) -> str:
    """A default as a `.env` line writes it."""
    if value is None or isinstance(value, SecretStr):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    text = str(value)
    return f'"{text}"' if re.search(r"\s|#", text) else text


def collect(settings_class: type[BaseSettings], source: str) -> list[Setting]:
    sections = sections_of(source)
    found = []
    missing = []
    for name, field in settings_class.model_fields.items():
        if not field.description:
            missing.append(name)
            continue
        default = field.get_default(call_default_factory=True)
        secret = _is_secret(field.annotation)
        found.append(
            Setting(
                section=sections.get(name, "other"),
                name=name,
                type=type_name(field.annotation),
                default=("***" if default is not None else "") if secret else env_value(default),
                secret=secret,
                description=" ".join(field.description.split()),
            )
        )
    if missing:
        raise SystemExit(f"settings without a Field description: {', '.join(missing)}")
    return found


def _grouped(settings: list[Setting]) -> dict[str, list[Setting]]:
    groups: dict[str, list[Setting]] = {}
    for setting in settings:
        groups.setdefault(setting.section, []).append(setting)
    return groups


def render_env_example(settings: list[Setting]) -> str:
    lines = [
        "# Generated by `uv run python scripts/settings_reference.py` from the settings class",
        "# (src/infrastructure/config/settings.py): edit the Field descriptions there, not here.",
        "#",
        "# Copy to .env and adjust. Every variable is optional: with no .env the app runs the",
        "# embedded profile (SQLite file in ./data, in-process stores). Environment variables",
        "# override .env; an empty value means the default. The test suite ignores .env",
        "# (ENVIRONMENT=pytest). Secrets are left empty here: never commit them.",
    ]
    for section, members in _grouped(settings).items():
        lines += ["", f"# --- {section} ".ljust(WIDTH, "-")]
        for setting in members:
            lines += textwrap.wrap(
                setting.description, WIDTH, initial_indent="# ", subsequent_indent="# "
            )
            lines.append(f"{setting.name}={'' if setting.secret else setting.default}")
    lines += [
        "",
        "# --- outside the settings class ".ljust(WIDTH, "-"),
        "# `app serve --workers N` (N > 1) aggregates its workers' metrics in a temporary folder;",
        "# set this to use a folder of your own (emptied at start).",
        "# PROMETHEUS_MULTIPROC_DIR=",
    ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(settings: list[Setting]) -> str:
    lines = [
        "<!-- Generated by backend/scripts/settings_reference.py from the settings class; "
        "edit the Field descriptions in backend/src/infrastructure/config/settings.py, then "
        "run `uv run python scripts/settings_reference.py`. -->",
        "",
        "# Configuration",
        "",
        "Every setting is an environment variable of the same name (case-sensitive), or a line",
        "of `backend/.env` (environment variables win; an empty value means the default). With",
        "nothing set the app runs the embedded profile: a SQLite file, in-process cache, rate",
        "limits, sessions in the database and tasks in the web process.",
        "`backend/.env.example` lists them all with the same descriptions; copy it to",
        "`backend/.env` to start.",
        "",
        "- `uv run app check-config` prints the effective values (secrets and URL passwords as",
        "  `***`) and exits 1 when production settings are unsafe.",
        "- `ENVIRONMENT=production` turns on the validator: it refuses the default or a weak",
        "  `SECRET_KEY`, default database passwords, `*` CORS with credentials, insecure cookies",
        "  and per-process state (unless `SINGLE_PROCESS=true`). See [Security](security.md).",
        "- The test suite sets `ENVIRONMENT=pytest` and ignores `.env`; see [Testing](testing.md).",
        "",
        "Secrets are shown as `***` below and left empty in `.env.example`.",
    ]
    for section, members in _grouped(settings).items():
        lines += [
            "",
            f"## {section[:1].upper()}{section[1:]}",
            "",
            "| name | type | default | description |",
            "| --- | --- | --- | --- |",
        ]
        for setting in members:
            default = f"`{setting.default.strip(chr(34))}`" if setting.default else "empty"
            lines.append(
                f"| `{setting.name}` | {_cell(setting.type)} | {_cell(default)} "
                f"| {_cell(setting.description)} |"
            )
    lines += [
        "",
        "## Outside the settings class",
        "",
        "| name | read by | meaning |",
        "| --- | --- | --- |",
        "| `PROMETHEUS_MULTIPROC_DIR` | `app serve --workers N`, `app worker --metrics-port P` "
        "| the folder where the processes' metrics are summed (a temporary one unless set) |",
        "| `TEST_DATABASE_URL`, `TEST_REDIS_URL`, `TEST_RABBITMQ_URL` | the test suite "
        "| which servers the tests use ([Testing](testing.md)) |",
    ]
    return "\n".join(lines) + "\n"


def outputs() -> dict[Path, str]:
    sys.path.insert(0, str(BACKEND))
    from src.infrastructure.config.settings import Settings

    found = collect(Settings, SETTINGS_SOURCE.read_text())
    return {ENV_EXAMPLE: render_env_example(found), CONFIGURATION_MD: render_markdown(found)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(
            f"{path.relative_to(ROOT)} is stale: run "
            "`cd backend && uv run python scripts/settings_reference.py`",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
