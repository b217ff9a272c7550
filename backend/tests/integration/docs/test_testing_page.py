"""docs/testing.md, executed: every code block on the page is run or checked, so the page
cannot drift from the project.

- `python` blocks start with the file they belong in (`# tests/conftest.py`; "(additional ...)"
  appends to it). Together with the page's `toml` block as `pyproject.toml` they form a small
  project, run with pytest in a subprocess against this app, on a database of its own on the
  suite's server (Postgres, or a SQLite file on the embedded profile). Every test it collects
  must pass, and each test function on the page must have run.
- The `toml` block is also the `[tool.pytest.ini_options]` of `backend/pyproject.toml`, exactly.
- `bash` blocks: each line is a command. `cd` names a folder of the repository; `uv run pytest`
  options are parsed by pytest itself (with the project's plugins, no conftest); `uv run python
  scripts/X.py` and `uv run mkdocs` need the script or file and every option they are given.
  `VAR=value` prefixes must be variables the suite or the settings read.
- The `text` block (the test layout tree) must name only files and folders that exist.
- Inline code that looks like a repository path (`tests/helpers/csrf.py`) must exist.
- A block after `<!-- snippet: fragment -->` is only compiled; there are few (counted below).
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from src.infrastructure.config.settings import Settings
from tests.helpers.database import database_url_for_tests, drop_database, recreate_database

BACKEND = Path(__file__).resolve().parents[3]
ROOT = BACKEND.parent
PAGE = ROOT / "docs" / "testing.md"
FRAGMENT_MARK = "<!-- snippet: fragment -->"
MAX_FRAGMENTS = 2


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int
    fragment: bool


def blocks(text: str) -> list[Block]:
    found, lines = [], text.splitlines()
    index = 0
    while index < len(lines):
        match = re.match(r"^(\s*)```(\w*)\s*$", lines[index])
        if not match:
            index += 1
            continue
        indent, language, start = match[1], match[2], index
        body = []
        index += 1
        while not re.match(rf"^{indent}```\s*$", lines[index]):
            body.append(lines[index][len(indent) :])
            index += 1
        previous = next((line for line in reversed(lines[:start]) if line.strip()), "")
        found.append(Block(language, "\n".join(body) + "\n", start + 1, previous == FRAGMENT_MARK))
        index += 1
    return found


PAGE_BLOCKS = blocks(PAGE.read_text())


def _of(language: str) -> list[Block]:
    return [block for block in PAGE_BLOCKS if block.language == language and not block.fragment]


# --- the page's project ------------------------------------------------------------------------


def project_files(page_blocks: list[Block]) -> dict[str, str]:
    """Relative path -> content, from the python blocks' first-line file comments."""
    files: dict[str, str] = {}
    for block in page_blocks:
        if block.language != "python" or block.fragment:
            continue
        first, _, rest = block.code.partition("\n")
        match = re.fullmatch(r"# (?P<path>tests/[\w/]+\.py)(?P<more> \(additional[^)]*\))?", first)
        assert match, f"line {block.line}: a python block starts with its file, e.g. # tests/x.py"
        path = match["path"]
        if match["more"]:
            assert path in files, f"line {block.line}: {path} is added to before it is written"
            files[path] += "\n\n" + rest
        else:
            assert path not in files, f"line {block.line}: {path} is written twice"
            files[path] = block.code
    for path in list(files):  # packages, so `tests.helpers.factories` imports
        for parent in Path(path).parents:
            if str(parent) != ".":
                files.setdefault(str(parent / "__init__.py"), "")
    return files


def test_python_blocks_are_valid_python_and_fragments_are_few():
    python = [block for block in PAGE_BLOCKS if block.language == "python"]
    assert len(python) >= 10
    for block in python:
        ast.parse(block.code, filename=f"docs/testing.md:{block.line}")
    fragments = [block for block in PAGE_BLOCKS if block.fragment]
    assert len(fragments) <= MAX_FRAGMENTS
    assert {block.language for block in PAGE_BLOCKS} <= {"python", "toml", "bash", "text"}


def test_the_toml_block_is_the_projects_pytest_configuration():
    [block] = _of("toml")
    shown = tomllib.loads(block.code)["tool"]["pytest"]["ini_options"]
    actual = tomllib.loads((BACKEND / "pyproject.toml").read_text())["tool"]["pytest"]
    assert shown == actual["ini_options"]


def _snippet_database_url() -> str:
    url = database_url_for_tests()
    if url.get_backend_name() == "sqlite":
        return url.set(
            database=str(Path(url.database or "").with_name("snippets.db"))
        ).render_as_string(hide_password=False)
    return url.set(database=f"{url.database}_snippets").render_as_string(hide_password=False)


def _child_environment(database_url: str) -> dict[str, str]:
    """The suite's environment minus what its conftest set for the app (the page's conftest
    configures its own) and minus xdist/coverage plumbing."""
    dropped = ("DATABASE_URL", "REDIS_URL", "PYTEST_", "COV_", "CACHE_", "RATE_LIMIT_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(dropped)}
    return env | {"TEST_DATABASE_URL": database_url}


@pytest.mark.integration
async def test_the_pages_python_blocks_pass_as_a_project(tmp_path):
    from sqlalchemy.engine import make_url

    project = tmp_path / "project"
    project.mkdir()
    [toml] = _of("toml")
    (project / "pyproject.toml").write_text(toml.code)
    (project / "src").symlink_to(BACKEND / "src")  # what `pythonpath = ["src"]` names
    files = project_files(PAGE_BLOCKS)
    for path, content in files.items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(content)
    expected = {
        name
        for content in files.values()
        for name in re.findall(r"^async def (test_\w+)|^def (test_\w+)", content, re.M)
        for name in name
        if name
    }

    database_url = _snippet_database_url()
    await recreate_database(make_url(database_url))
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rA"],
            cwd=project,
            env=_child_environment(database_url),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        await drop_database(make_url(database_url))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    passed = set(re.findall(r"^PASSED \S+::(\w+)", output, re.M))
    assert passed == expected, output[-6000:]


# --- shell blocks -------------------------------------------------------------------------------

KNOWN_ENV = {"TEST_DATABASE_URL", "TEST_REDIS_URL", "TEST_RABBITMQ_URL", *Settings.model_fields}


def commands() -> list[tuple[int, list[str]]]:
    found = []
    for block in _of("bash"):
        for offset, line in enumerate(block.code.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                found.append((block.line + offset, shlex.split(line, comments=True)))
    return found


def _options(args: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in args if arg.startswith("-")]


# Parses each pytest command line with pytest's own parser and every installed plugin (xdist,
# cov, env, asyncio, ...), without conftest or collection: an unknown option or a bad value
# (`-n many`) is a UsageError. A process of its own, so the plugins load fresh.
_PARSE_PYTEST_ARGS = """
import json, sys
from _pytest.config import UsageError, get_config
config = get_config()
config.pluginmanager.load_setuptools_entrypoints("pytest11")
errors = []
for args in json.load(sys.stdin):
    try:
        config._parser.parse(args)
    except UsageError as error:
        errors.append(f"{args}: {error}")
print(json.dumps(errors))
"""


def pytest_usage_errors(command_lines: list[list[str]]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_PYTEST_ARGS],
        input=json.dumps(command_lines),
        cwd=BACKEND,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    errors: list[str] = json.loads(result.stdout)
    return errors


def script_options(script: Path) -> set[str]:
    return set(re.findall(r"add_argument\(\s*\"(-[\w-]+)\"", script.read_text()))


def mkdocs_build_options() -> set[str]:
    from mkdocs.__main__ import build_command

    return {option for parameter in build_command.params for option in parameter.opts}


def test_every_shell_command_is_one_the_project_runs():
    seen = set()
    pytest_runs = []
    for line, words in commands():
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name = words.pop(0).split("=", 1)[0]
            assert name in KNOWN_ENV, f"docs/testing.md:{line}: unknown variable {name}"
        where = f"docs/testing.md:{line}: {shlex.join(words)}"
        if words[0] == "cd":
            assert words == ["cd", "backend"], where
            assert (ROOT / words[1]).is_dir(), where
            continue
        assert words[:2] == ["uv", "run"], where
        tool, args = words[2], words[3:]
        seen.add(tool)
        if tool == "pytest":
            pytest_runs.append(args)
        elif tool == "python":
            script = BACKEND / args[0]
            assert script.is_file(), where
            unknown = set(_options(args[1:])) - script_options(script)
            assert not unknown, f"{where}: not an option of the script: {unknown}"
        elif tool == "mkdocs":
            assert args[0] == "build", where
            assert (BACKEND / args[args.index("-f") + 1]).is_file(), where
            unknown = set(_options(args[1:])) - mkdocs_build_options()
            assert not unknown, f"{where}: not an option of mkdocs build: {unknown}"
        else:
            pytest.fail(f"{where}: not a command this page knows how to check")
    assert {"pytest", "python", "mkdocs"} <= seen
    assert len(pytest_runs) >= 8
    assert pytest_usage_errors(pytest_runs) == []


def test_the_checks_catch_a_wrong_option():
    errors = pytest_usage_errors([["-m", "unit"], ["--no-such-option"], ["-n", "many"]])
    assert len(errors) == 2
    assert "--no-such-option" in errors[0]
    assert "--help" not in script_options(BACKEND / "scripts" / "api_contract.py")
    assert "--seed" in script_options(BACKEND / "scripts" / "api_contract.py")
    assert "--strict" in mkdocs_build_options()


# --- the layout tree and the paths the page names ----------------------------------------------


def tree_paths(code: str) -> list[str]:
    """Paths of a tree: `tests/`, `├── helpers/`, `│   ├── csrf.py` -> ..., tests/helpers/csrf.py"""
    stack: list[str] = []
    found = []
    for line in code.splitlines():
        entry = line.split("#", 1)[0].rstrip()
        if not entry.strip(" │"):
            continue  # a comment's continuation line
        match = re.match(r"^(?P<indent>(?:[│ ]   )*)(?:[├└]── )?(?P<name>\S+)$", entry)
        if not entry.strip() or not match:
            continue
        depth = len(match["indent"]) // 4 + (1 if "── " in entry else 0)
        stack[depth:] = [match["name"]]
        found.append(
            "".join(part if part.endswith("/") else part + "/" for part in stack[:-1]) + stack[-1]
        )
    return found


def test_the_layout_tree_names_only_what_exists():
    [tree] = _of("text")
    paths = tree_paths(tree.code)
    assert "tests/helpers/csrf.py" in paths
    assert "tests/unit/modules/user/test_service.py" in paths
    missing = [path for path in paths if not (BACKEND / path).exists()]
    assert missing == []


def test_the_tree_parser_nests_entries():
    code = "tests/\n├── a/\n│   └── b.py   # note\n└── c.py\n"
    assert tree_paths(code) == ["tests/", "tests/a/", "tests/a/b.py", "tests/c.py"]


PATH_LIKE = re.compile(r"^(?:backend/)?(?:tests|src|scripts|docs|\.ci|\.github)/[\w./-]*$")


def test_every_path_the_page_names_exists():
    text = re.sub(r"```.*?```", "", PAGE.read_text(), flags=re.S)
    spans = {span for span in re.findall(r"`([^`\s]+)`", text) if PATH_LIKE.match(span)}
    assert "tests/helpers/servers.py" in spans
    missing = [
        span
        for span in spans
        if not any((base / span).exists() for base in (ROOT, BACKEND))
        and not (ROOT / "backend" / span).exists()
    ]
    assert missing == []
