"""`scripts/settings_reference.py`: `.env.example` and docs/configuration.md are generated from
the settings class, CI fails when either is stale, and secrets never show their value."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, SecretStr

from src.infrastructure.config.settings import Settings
from tests.helpers.scripts import load_script

pytestmark = pytest.mark.unit
reference = load_script("settings_reference")


def test_the_committed_files_are_up_to_date(capsys):
    assert reference.main(["--check"]) == 0, capsys.readouterr().err


def test_every_setting_is_in_both_files_with_its_description():
    env_example = reference.ENV_EXAMPLE.read_text()
    markdown = reference.CONFIGURATION_MD.read_text()
    for name, field in Settings.model_fields.items():
        assert f"\n{name}=" in env_example
        row = next(line for line in markdown.splitlines() if line.startswith(f"| `{name}` |"))
        assert " ".join(field.description.split()).replace("|", "\\|") in row


def test_a_stale_file_fails_the_check_and_generation_mends_it(tmp_path, monkeypatch, capsys):
    stale = tmp_path / ".env.example"
    stale.write_text("SECRET_KEY=\n")
    markdown = tmp_path / "configuration.md"
    markdown.write_text(reference.CONFIGURATION_MD.read_text())
    monkeypatch.setattr(reference, "ENV_EXAMPLE", stale)
    monkeypatch.setattr(reference, "CONFIGURATION_MD", markdown)
    monkeypatch.setattr(reference, "ROOT", tmp_path)

    assert reference.main(["--check"]) == 1
    assert ".env.example is stale" in capsys.readouterr().err
    assert stale.read_text() == "SECRET_KEY=\n"  # --check writes nothing

    assert reference.main([]) == 0
    assert reference.main(["--check"]) == 0
    assert stale.read_text() == reference.ENV_EXAMPLE.read_text()


def test_a_setting_without_description_is_refused():
    class Extended(Settings):
        UNDOCUMENTED_SETTING: int = 3

    with pytest.raises(SystemExit, match="UNDOCUMENTED_SETTING"):
        reference.collect(Extended, "")


def test_secrets_never_show_their_default_and_sections_come_from_the_source():
    class WithSecret(Settings):
        # --- vault ---------------------------------------------------------------------------
        VAULT_TOKEN: SecretStr = Field(SecretStr("hunter2-value"), description="A token.")
        VAULT_NAME: str | None = Field(None, description="A name with | a pipe.")

    source = Path(__file__).read_text()
    found = reference.collect(WithSecret, source)
    env_example = reference.render_env_example(found)
    markdown = reference.render_markdown(found)

    assert "hunter2-value" not in env_example + markdown
    assert "\nVAULT_TOKEN=\n" in env_example
    assert "| `VAULT_TOKEN` | secret | `***` | A token. |" in markdown
    assert "| `VAULT_NAME` | str or empty | empty | A name with \\| a pipe. |" in markdown
    assert "## Vault" in markdown
    assert "# --- vault " in env_example
