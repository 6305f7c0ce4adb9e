"""Bad settings and CLI arguments give one clear line; `rag search` honours its settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.core.config import load_settings
from rag.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.fixture
def env(fake_env, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(9):
        (docs / f"animal{i}.txt").write_text(f"Zebra number {i} lives in Kenya and is striped.")
    return docs


@pytest.mark.parametrize("var, value, expected", [
    ("RAG_RETRIEVAL__K", "abc", "integer"),
    ("RAG_RETRIEVAL__K", "0", "greater than or equal to 1"),
    ("RAG_LLM__TEMPERATURE", "hot", "number"),
    ("RAG_RETRIEVAL__MODE", "fuzzy", "'hybrid', 'dense' or 'bm25'"),
    ("RAG_UI__PORT", "http", "integer"),
])
def test_bad_setting_is_one_line_naming_the_variable(var, value, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(environ={var: value, "RAG_HOME": "/tmp/x"})
    message = str(info.value)
    assert "\n" not in message
    assert f"{var}={value!r}" in message and expected in message, message


def test_bad_setting_from_the_cli_prints_one_line(env, monkeypatch):
    monkeypatch.setenv("RAG_RETRIEVAL__K", "abc")
    out = runner.invoke(app, ["search", "zebra"])
    assert out.exit_code == 1
    assert "Traceback" not in out.output and "validation error" not in out.output.lower()
    lines = [ln for ln in out.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "RAG_RETRIEVAL__K='abc'" in lines[0] and "integer" in lines[0], out.output


def test_search_rejects_an_unknown_mode(env):
    assert runner.invoke(app, ["ingest", str(env)]).exit_code == 0
    out = runner.invoke(app, ["search", "zebra", "--mode", "foo"])
    assert out.exit_code != 0
    assert "foo" in out.output and "hybrid" in out.output


def test_api_search_rejects_an_unknown_mode(env):
    from rag.serve.api import DocQA

    qa = DocQA.open()
    qa.ingest([env])
    with pytest.raises(ConfigError, match="unknown retrieval mode 'foo'"):
        qa.retrieve("zebra", mode="foo")


def test_search_k_defaults_to_the_setting(env, monkeypatch):
    assert runner.invoke(app, ["ingest", str(env)]).exit_code == 0
    monkeypatch.setenv("RAG_RETRIEVAL__K", "7")
    out = runner.invoke(app, ["search", "zebra", "--json"])
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.output)) == 7
    out = runner.invoke(app, ["search", "zebra", "--json", "-k", "2"])
    assert len(json.loads(out.output)) == 2


def test_messages_name_only_commands_that_exist():
    import typer.main

    commands = set(typer.main.get_command(app).commands)
    named = {}
    for path in [*(REPO / "rag").rglob("*.py"), *(REPO / "ui").rglob("*.py")]:
        for m in re.finditer(r"`rag ([a-z][a-z-]*)", path.read_text(encoding="utf-8")):
            named.setdefault(m.group(1), []).append(path.name)
    missing = {cmd: files for cmd, files in named.items() if cmd not in commands}
    assert not missing, f"texts name commands that do not exist: {missing}"
    assert named, "expected some `rag <command>` references"
