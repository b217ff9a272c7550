"""The Testing page's "Testing Background Tasks" fixture, as the page writes it, and the bare
`infrastructure` import name it relies on: `infrastructure.X` is the very module object
`src.infrastructure.X` (an alias, never a second copy), whichever spelling is imported first."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import pytest_asyncio
from taskiq import InMemoryBroker

import infrastructure.taskiq.brokers
import src.infrastructure.taskiq
import src.infrastructure.taskiq.brokers
from infrastructure.taskiq import default_broker as real_broker

BACKEND = Path(__file__).resolve().parents[3]


# The page's fixture, pasted as written except for `autouse=True`: here only the tests that ask
# for it get the patched broker; the rest of the suite keeps its own (the app's) broker.
@pytest_asyncio.fixture
async def in_memory_broker(monkeypatch):
    test_broker = InMemoryBroker()
    monkeypatch.setattr("infrastructure.taskiq.brokers.default_broker", test_broker)
    monkeypatch.setattr("infrastructure.taskiq.default_broker", test_broker)
    yield test_broker


@pytest.mark.integration
async def test_page_fixture_patch_reaches_the_src_names_and_kiq_runs_the_task(in_memory_broker):
    assert in_memory_broker is not real_broker
    assert src.infrastructure.taskiq.default_broker is in_memory_broker
    assert src.infrastructure.taskiq.brokers.default_broker is in_memory_broker

    @in_memory_broker.task
    async def add(a: int, b: int) -> int:
        return a + b

    task = await add.kiq(2, 3)
    result = await task.wait_result(timeout=5)
    assert not result.is_err
    assert result.return_value == 5


@pytest.mark.integration
def test_bare_names_are_the_src_modules_and_the_apps_broker():
    assert infrastructure.taskiq is src.infrastructure.taskiq
    assert infrastructure.taskiq.brokers is src.infrastructure.taskiq.brokers
    assert real_broker is src.infrastructure.taskiq.default_broker
    assert real_broker is src.infrastructure.taskiq.brokers.default_broker


_SAME_OBJECTS = """
import sys

{first}
{second}
assert b is s, (b, s)
import infrastructure, src.infrastructure
assert infrastructure is src.infrastructure
import infrastructure.config, src.infrastructure.config
assert infrastructure.config.settings is src.infrastructure.config.settings
import infrastructure.database.session as bare_session, src.infrastructure.database.session
assert bare_session is src.infrastructure.database.session
assert bare_session.get_engine() is src.infrastructure.database.session.get_engine()  # one engine
from infrastructure.taskiq import default_broker as bare_broker
from src.infrastructure.taskiq import default_broker
assert bare_broker is default_broker
for name, module in list(sys.modules.items()):
    if name == "infrastructure" or name.startswith("infrastructure."):
        # one object per module, which keeps its real identity
        assert sys.modules["src." + name] is module, name
        assert module.__name__ == module.__spec__.name == "src." + name, name
print("ok")
"""
_BARE = "import infrastructure.taskiq.brokers as b"
_SRC = "import src.infrastructure.taskiq.brokers as s"


@pytest.mark.integration
@pytest.mark.parametrize(("first", "second"), [(_BARE, _SRC), (_SRC, _BARE)], ids=["bare", "src"])
def test_both_spellings_name_the_same_modules_in_a_fresh_interpreter(first, second):
    code = textwrap.dedent(_SAME_OBJECTS).format(first=first, second=second)
    env = {**os.environ, "PYTHONPATH": "src"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BACKEND,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
