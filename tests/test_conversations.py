"""Saved conversations: the SQLite store, the Python API and `rag conversations` (fake models only)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.core.config import load_settings
from rag.core.errors import ConversationError
from rag.core.types import Answer, Chunk, Citation
from rag.memory.conversations import DB_NAME, ConversationStore, conversation_markdown
from rag.serve.api import DocQA
from tests.conftest import shared_cache

ZEBRA = "Zebras live in Kenya and are striped. <b>Bold</b> claims aside, they eat grass."
REPLY = "Answer: Kenya\nDetails: Zebras live in Kenya [1]."


def sample_answer(question: str = "Where do zebras live?", quote: str = "Zebras live in Kenya and are striped.") -> Answer:
    passage = Chunk("zebra-0", ZEBRA, "/docs/zebra.txt", title="Zebras", page=2, start=0, end=len(ZEBRA),
                    score=0.8, url="https://example.org/zebras")
    other = Chunk("penguin-0", "Penguins live in Antarctica.", "/docs/penguin.md", score=0.2)
    cite = Citation(n=1, chunk_id="zebra-0", source="/docs/zebra.txt", title="Zebras", page=2, quote=quote,
                    score=0.8, support=0.9, supported=True, url="https://example.org/zebras", text=ZEBRA,
                    quote_start=ZEBRA.find(quote), quote_end=ZEBRA.find(quote) + len(quote))
    return Answer(text="Zebras live in Kenya [1].", citations=[cite], short_answer="Kenya", question=question,
                  standalone_question=question, passages=[passage, other],
                  timings={"retrieval_ms": 3.0, "total_ms": 40.0}, dropped_citations=1)


@pytest.fixture
def store(tmp_path) -> ConversationStore:
    return ConversationStore(tmp_path / DB_NAME, "default")


# --- types --------------------------------------------------------------------------------------
def test_answer_round_trips_through_its_dict():
    a = sample_answer()
    again = Answer.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again.to_dict() == a.to_dict()
    assert again.citations == a.citations and again.passages == a.passages  # frozen dataclasses compare by value
    assert Chunk.from_dict({**a.passages[0].to_dict(), "added_later": 1}) == a.passages[0]  # unknown keys ignored


# --- the store ----------------------------------------------------------------------------------
def test_save_list_reopen_rename_delete_export(store):
    first = store.add_turn("Where do zebras live?", sample_answer())
    follow = store.add_turn("And what do they eat?", sample_answer("And what do they eat?"), first.conversation_id)
    other = store.add_turn("Where do penguins live?", sample_answer("Where do penguins live?"))
    assert follow.conversation_id == first.conversation_id and follow.position == 2
    assert follow.history == ("Where do zebras live?",)

    listed = store.list()
    assert [c.conversation_id for c in listed] == [other.conversation_id, first.conversation_id]  # newest first
    assert [c.title for c in listed] == ["Where do penguins live?", "Where do zebras live?"]  # the first question
    assert listed[1].turn_count == 2 and listed[1].turns == []

    conv = store.get(first.conversation_id)
    assert [t.question for t in conv.turns] == ["Where do zebras live?", "And what do they eat?"]
    assert conv.turns[0].answer.citations == sample_answer().citations  # citations intact
    assert conv.turns[0].answer.to_dict() == sample_answer().to_dict()
    # the last answer carries the conversation, to continue it with qa.ask(..., history=...)
    assert conv.last_answer.history == [("Where do zebras live?", "Zebras live in Kenya [1]."),
                                        ("And what do they eat?", "Zebras live in Kenya [1].")]

    store.add_turn("And are they striped?", sample_answer("And are they striped?"), first.conversation_id[:6])
    assert store.list()[0].conversation_id == first.conversation_id  # the active one moves to the top

    renamed = store.rename(first.conversation_id, "  Zebra   facts ")
    assert renamed.title == "Zebra facts" and store.list()[0].title == "Zebra facts"
    with pytest.raises(ConversationError, match="cannot be empty"):
        store.rename(first.conversation_id, "   ")

    md = store.to_markdown(first.conversation_id)
    assert md.startswith("# Zebra facts\n")
    assert "## 1. Where do zebras live?" in md and "## 3. And are they striped?" in md
    assert "**Zebras live in Kenya and are striped.**" in md  # the cited quote, marked in its passage
    assert "`zebra.txt` · p. 2 · support 0.90" in md and "<https://example.org/zebras>" in md
    assert "<b>" not in md and "&lt;b&gt;Bold&lt;/b&gt;" in md  # document text cannot inject HTML

    store.delete(first.conversation_id)
    assert [c.conversation_id for c in store.list()] == [other.conversation_id]
    with pytest.raises(ConversationError, match="rag conversations list"):
        store.get(first.conversation_id)
    with pytest.raises(ConversationError):
        store.add_turn("x", sample_answer(), first.conversation_id)
    with sqlite3.connect(store.path) as con:  # the turns went with it
        assert con.execute("SELECT COUNT(*) FROM turns").fetchone()[0] == 1


def test_collections_are_separate(tmp_path):
    a, b = ConversationStore(tmp_path / DB_NAME, "a"), ConversationStore(tmp_path / DB_NAME, "b")
    turn = a.add_turn("q?", sample_answer("q?"))
    assert b.list() == [] and len(a.list()) == 1
    with pytest.raises(ConversationError, match="collection 'b'"):
        b.get(turn.conversation_id)


def test_abstained_answer_exports_what_was_looked_at(store):
    a = Answer(text="I don't know based on the documents.", abstained=True, question="GDP of France?",
               passages=[Chunk("p", "Penguins live in Antarctica.", "/docs/penguin.md", score=0.1)])
    turn = store.add_turn("GDP of France?", a)
    md = store.to_markdown(turn.conversation_id)
    assert "I don't know based on the documents." in md and "`penguin.md`: Penguins live in Antarctica." in md
    assert store.get(turn.conversation_id).turns[0].answer.abstained


def test_concurrent_writers_lose_nothing(store):
    turn = store.add_turn("start", sample_answer("start"))
    errors = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                store.add_turn(f"t{n}-{i}", sample_answer(f"t{n}-{i}"), turn.conversation_id)
                store.add_turn(f"own {n}-{i}", sample_answer())
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    conv = store.get(turn.conversation_id)
    assert [t.position for t in conv.turns] == list(range(1, 62))
    assert len(store.list()) == 61


def _write_from_process(path: str, n: int) -> None:
    s = ConversationStore(Path(path), "default")
    for i in range(5):
        s.add_turn(f"p{n}-{i}", sample_answer(f"p{n}-{i}"))


def test_separate_processes_share_the_store(store):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_from_process, args=(str(store.path), n)) for n in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(store.list()) == 15
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_corrupt_file_is_a_clear_error_and_is_left_alone(tmp_path):
    path = tmp_path / DB_NAME
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConversationError, match="move the file aside"):
        ConversationStore(path, "default").list()
    assert path.read_bytes() == b"this is not a database" * 100


def test_markdown_without_passage_text_still_holds_the_quote():
    from rag.memory.conversations import Conversation, ConversationTurn

    a = Answer(text="Kenya [1].", question="q", citations=[Citation(1, "c", "/d/z.txt", quote="Zebras live in Kenya.")])
    conv = Conversation("id", "default", "t", "2026-01-01T00:00:00", "2026-01-01T00:00:00", 1,
                        [ConversationTurn("tid", "id", 1, "q", a, "2026-01-01T00:00:00")])
    assert "**Zebras live in Kenya.**" in conversation_markdown(conv)


# --- the Python API with fake models ---------------------------------------------------------------
@pytest.fixture
def qa(tmp_path):
    settings = load_settings(environ={}, home=tmp_path / "home", cache=shared_cache(),
                             embedding={"provider": "fake", "model_name": "fake"},
                             llm={"provider": "fake", "fake_responses": [REPLY]},
                             answer={"min_relevance": -1.0}, retrieval={"mode": "bm25"})
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "zebra.txt").write_text(ZEBRA, encoding="utf-8")
    (docs / "penguin.md").write_text("# Penguins\n\nPenguins live in Antarctica and cannot fly.", encoding="utf-8")
    q = DocQA(settings)
    q.ingest([docs])
    return q


def test_api_saves_lists_and_continues_a_conversation(qa):
    answer = qa.ask("Where do zebras live?")
    assert answer.citations and not answer.abstained
    turn = qa.save_turn(answer)
    conv = qa.conversation(turn.conversation_id)
    assert conv.turns[0].answer.citations == answer.citations
    assert [c.conversation_id for c in qa.conversations()] == [turn.conversation_id]
    follow = qa.ask("And are they striped?", history=conv.last_answer)  # a reopened conversation goes on
    assert follow.history[0] == ("Where do zebras live?", answer.text)
    qa.save_turn(follow, turn.conversation_id)
    assert qa.conversations()[0].turn_count == 2
    assert "Zebras live in Kenya" in qa.export_conversation(turn.conversation_id)
    assert qa.with_collection("other").conversations() == []
    qa.rename_conversation(turn.conversation_id, "Zebras")
    assert qa.conversations()[0].title == "Zebras"
    qa.delete_conversation(turn.conversation_id)
    assert qa.conversations() == []


# --- the CLI --------------------------------------------------------------------------------------
def test_cli_conversations(qa, monkeypatch, tmp_path):
    turn = qa.save_turn(qa.ask("Where do zebras live?"))
    qa.save_turn(qa.ask("Where do penguins live?"))
    runner = CliRunner()
    home = ["--home", str(qa.settings.home)]
    monkeypatch.setenv("RAG_EMBEDDING__PROVIDER", "fake")
    monkeypatch.setenv("RAG_EMBEDDING__MODEL_NAME", "fake")

    listed = runner.invoke(app, ["conversations", "list", "--json", *home])
    assert listed.exit_code == 0, listed.output
    assert [c["title"] for c in json.loads(listed.output)] == ["Where do penguins live?", "Where do zebras live?"]
    shown = runner.invoke(app, ["conversations", "show", turn.conversation_id[:5], *home])
    assert shown.exit_code == 0 and "Where do zebras live?" in shown.output and "zebra.txt" in shown.output
    out = tmp_path / "out" / "zebras.md"
    exported = runner.invoke(app, ["conversations", "export", turn.conversation_id, "--out", str(out), *home])
    assert exported.exit_code == 0 and "**Zebras live in Kenya and are striped.**" in out.read_text()
    renamed = runner.invoke(app, ["conversations", "rename", turn.conversation_id, "Zebra facts", *home])
    assert renamed.exit_code == 0 and "Zebra facts" in renamed.output
    deleted = runner.invoke(app, ["conversations", "delete", turn.conversation_id, *home])
    assert deleted.exit_code == 0 and "deleted" in deleted.output
    missing = runner.invoke(app, ["conversations", "show", turn.conversation_id, *home])
    assert missing.exit_code == 1 and "rag conversations list" in missing.output and "Traceback" not in missing.output
