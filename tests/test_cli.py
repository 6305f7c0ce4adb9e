"""The `rag` command line, driven through its real entry point with fake models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rag.cli import app

runner = CliRunner()


@pytest.fixture
def env(fake_env, tmp_path):
    fake_env.setenv("RAG_ANSWER__MIN_RELEVANCE", "-1")
    fake_env.setenv("RAG_LLM__FAKE_RESPONSES", json.dumps(["Answer: Kenya\nDetails: Zebras live in Kenya [1]."]))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zebra.txt").write_text("Zebras live in Kenya and are striped.")
    (docs / "penguin.md").write_text("# Penguins\n\nPenguins live in Antarctica and cannot fly.")
    (docs / "junk.bin").write_bytes(b"\x00\x01\x02")
    return docs


def run(*args):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ingest_summary_and_incremental(env):
    out = run("ingest", str(env))
    assert out.exit_code == 0, out.output
    assert "2 added" in out.output and "1 skipped" in out.output and "unsupported file type .bin" in out.output
    again = run("ingest", str(env))
    assert "2 unchanged" in again.output and "0 chunks written" in again.output
    reread = run("ingest", str(env), "--reread")
    assert reread.exit_code == 0 and "2 updated" in reread.output, reread.output


def test_search_json_and_sources_and_delete(env):
    run("ingest", str(env))
    out = run("search", "Where do penguins live?", "-k", "1", "--json", "--mode", "bm25")
    hits = json.loads(out.output)
    assert hits[0]["source"].endswith("penguin.md") and {"chunk_id", "text", "page", "start", "end", "score"} <= set(hits[0])
    listing = json.loads(run("sources", "--json").output)
    assert sorted(s["title"] for s in listing) == ["Penguins", "Zebras live in Kenya and are striped."]
    assert run("delete", "penguin.md").exit_code == 0
    assert [s["source"] for s in json.loads(run("sources", "--json").output)] == [str((env / "zebra.txt").resolve())]


def test_sync_flag(env):
    run("ingest", str(env))
    (env / "zebra.txt").unlink()
    out = run("ingest", str(env), "--sync")
    assert "1 removed" in out.output


def test_ask_json(env):
    run("ingest", str(env))
    out = run("ask", "Where do zebras live?", "--json")
    data = json.loads(out.output)
    assert data["answer"].startswith("Zebras live in Kenya") and not data["abstained"]
    assert data["citations"][0]["source"].endswith("zebra.txt") and data["citations"][0]["quote"]
    assert {"retrieval_ms", "first_token_ms", "tokens_per_s"} <= set(data["timings"])


def test_errors_are_one_clear_line(env):
    out = runner.invoke(app, ["search", "anything"])
    assert out.exit_code == 1
    assert "no documents indexed yet" in out.output and "rag ingest" in out.output
    assert "Traceback" not in out.output
    out = runner.invoke(app, ["delete", "nothing.txt"])
    assert out.exit_code == 1 and "rag sources" in out.output


def test_collections_are_separate(env):
    run("ingest", str(env), "--collection", "notes")
    assert json.loads(run("sources", "--json", "--collection", "notes").output)
    assert json.loads(run("sources", "--json").output) == []
    bad = runner.invoke(app, ["sources", "--collection", "x"])
    assert bad.exit_code == 1 and "invalid collection name" in bad.output
