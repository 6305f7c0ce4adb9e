"""Several people on one server: every state-changing action checks the role on the server, conversations
and feedback belong to the user who made them, and the HTTP API takes the UI's upload path.

The UI callbacks are called as Gradio calls them (with the signed-in user's `gr.Request`), so each check is
the server's own, whatever the page shows; the HTTP API is served live on loopback.
"""

from __future__ import annotations

import sqlite3

import gradio as gr
import httpx
import pytest

from rag.core.errors import ConversationError
from rag.memory.conversations import DB_NAME, ConversationStore
from rag.serve.api import DocQA
from rag.serve.http import create_app
from tests.robustness.test_exposure import make_qa as make_ui_qa
from tests.test_server import ANSWER, live_server
from tests.test_server import make_qa as make_api_qa
from ui.access import load_guard
from ui.conversations import ConversationHandlers
from ui.handlers import Handlers
from ui.render import Turn

ALICE, BOB, CAROL = gr.Request(username="alice"), gr.Request(username="bob"), gr.Request(username="carol")


@pytest.fixture
def ui(tmp_path):
    """Handlers of a UI with a login: alice is an editor, bob a reader (tests.robustness.test_exposure.AUTH)."""
    qa = make_ui_qa(tmp_path)
    h = Handlers(qa, load_guard(qa.settings.ui))
    yield qa, h, ConversationHandlers(h)
    h.stop_watchers()


# --- 1. roles, one test per action with a reader ----------------------------------------------------
def test_reader_cannot_watch_a_folder(ui, tmp_path):
    qa, h, _ = ui
    folder = tmp_path / "watched"
    folder.mkdir()
    (folder / "new.txt").write_text("Penguins live in Antarctica.")
    with pytest.raises(gr.Error, match="editor role"):
        h.watch(str(folder), "default", BOB)
    assert h.watched_markdown() == "No folder is being watched."
    assert "new.txt" not in {s.source.rsplit("/", 1)[-1] for s in qa.sources()}
    h.watch(str(folder), "default", ALICE)
    assert "new.txt" in {s.source.rsplit("/", 1)[-1] for s in qa.sources()}


def test_reader_cannot_stop_a_watch(ui, tmp_path):
    _, h, _ = ui
    folder = tmp_path / "watched"
    folder.mkdir()
    h.watch(str(folder), "default", ALICE)
    with pytest.raises(gr.Error, match="editor role"):
        h.unwatch(str(folder), "default", BOB)
    assert "(watching)" in h.watched_markdown()
    h.unwatch(str(folder), "default", ALICE)
    assert h.watched_markdown() == "No folder is being watched."


def test_reader_cannot_create_a_collection_by_watching_into_it(ui, tmp_path):
    qa, h, _ = ui
    with pytest.raises(gr.Error, match="editor role"):
        h.watch(str(tmp_path), "readers-own", BOB)
    with pytest.raises(gr.Error, match="editor role"):
        h.switch_collection("readers-own", BOB)
    assert "readers-own" not in qa.collections()


def test_readers_see_every_changing_control_disabled(ui):
    _, h, _ = ui
    assert [u["interactive"] for u in h.controls(BOB)] == [False] * 6  # upload, delete x2, watch x3
    assert [u["interactive"] for u in h.controls(ALICE)] == [True] * 6


def test_reader_token_cannot_create_a_collection_through_the_api(fake_settings, tmp_path):
    qa = make_api_qa(fake_settings, [ANSWER], tmp_path, tokens=["editor-secret", "reader-secret:reader"])
    with live_server(create_app(qa)) as url:
        reader = {"Authorization": "Bearer reader-secret"}
        r = httpx.post(f"{url}/v1/documents?collection=readers-own", headers=reader,
                       files={"files": ("a.txt", b"Penguins live in Antarctica.")})
        assert r.status_code == 403
        r = httpx.post(f"{url}/v1/search", headers=reader, json={"query": "x", "collection": "readers-own"})
        assert r.status_code == 404
    assert "readers-own" not in qa.collections()


def test_mcp_tools_only_read():
    pytest.importorskip("mcp")
    import asyncio

    from rag.serve.mcp import build_server

    class Nothing:  # the tools are only listed, never called
        settings = None

    tools = asyncio.run(build_server(Nothing()).list_tools())
    assert sorted(t.name for t in tools) == ["ask", "list_sources", "search"]  # no tool changes anything


# --- 2. conversations and feedback belong to their user ----------------------------------------------
def saved_by(ch: ConversationHandlers, request, question: str = "How many companies changed their scope?"):
    qa = ch.h.base
    turn = Turn(question, answer=qa.ask(question))
    turns, conversation_id, *_ = ch.save([turn], "", "default", request)
    return conversation_id, turns[0].turn_id


def test_conversations_are_listed_and_opened_by_their_owner_only(ui):
    qa, _, ch = ui
    mine, _ = saved_by(ch, ALICE)
    assert [c for c, _ in ch.listing("default", None, ALICE)["choices"]][0].startswith("How many")
    assert ch.listing("default", None, BOB)["choices"] == []  # bob sees nothing of alice's
    with pytest.raises(gr.Error, match="no conversation"):
        ch.open(mine, "default", BOB)
    with pytest.raises(gr.Error, match="no conversation"):
        ch.export(mine, "default", BOB)
    assert ch.open(mine, "default", ALICE)[3] == mine
    # a reload in a browser alice used: bob does not get her conversation back
    restored = ch.restore({"conversation": mine, "collection": "default"}, "default", BOB)
    assert restored[4] == ""
    assert ch.restore({"conversation": mine, "collection": "default"}, "default", ALICE)[4] == mine
    assert [c.conversation_id for c in qa.conversations()] == [mine]  # the CLI on the server sees all


def test_only_the_owner_renames_or_deletes_a_conversation(ui):
    qa, _, ch = ui
    mine, _ = saved_by(ch, ALICE)
    with pytest.raises(gr.Error, match="no conversation"):
        ch.rename(mine, "bob was here", "default", BOB)
    with pytest.raises(gr.Error, match="no conversation"):
        ch.delete(mine, "default", CAROL)
    assert qa.conversation(mine).title.startswith("How many")
    ch.rename(mine, "Scope changes", "default", ALICE)
    assert qa.conversation(mine).title == "Scope changes"
    ch.delete(mine, "default", ALICE)
    assert qa.conversations() == []


def test_feedback_is_given_on_and_listed_for_ones_own_answers(ui):
    qa, _, ch = ui
    _, turn_id = saved_by(ch, ALICE)
    with pytest.raises(gr.Error, match="no saved answer"):
        ch.rate_down(turn_id, "", "", "default", BOB)
    assert "marked helpful" in ch.rate_up(turn_id, "", "", "default", ALICE)
    assert [f.owner for f in qa.feedback_items()] == ["alice"]
    assert qa.feedback_items(owner="bob") == []


def test_without_a_login_everyone_shares_the_conversations_as_before(tmp_path):
    qa = make_ui_qa(tmp_path)
    ch = ConversationHandlers(Handlers(qa))  # no guard: loopback use
    mine, _ = saved_by(ch, None)
    assert ch.open(mine, "default", gr.Request())[3] == mine
    assert [c.owner for c in qa.conversations(owner="")] == [""]


def test_a_store_from_before_owners_migrates(tmp_path):
    path = tmp_path / DB_NAME
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE conversations (id TEXT PRIMARY KEY, collection TEXT NOT NULL, title TEXT NOT NULL,
                                    created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
        CREATE TABLE feedback (id TEXT PRIMARY KEY, collection TEXT NOT NULL, rated TEXT NOT NULL, turn_id TEXT,
            conversation_id TEXT, rating INTEGER NOT NULL, comment TEXT NOT NULL DEFAULT '',
            correction TEXT NOT NULL DEFAULT '', question TEXT NOT NULL, history_json TEXT NOT NULL,
            answer_json TEXT NOT NULL, created_at TEXT NOT NULL, UNIQUE (collection, rated));
        INSERT INTO conversations VALUES ('abc123abc123', 'default', 'Old talk', '2025-01-01', '2025-01-01');
    """)
    con.commit()
    con.close()
    assert [c.title for c in ConversationStore(path, "default").list()] == ["Old talk"]
    assert [c.owner for c in ConversationStore(path, "default", owner="").list()] == [""]  # no login: as before
    assert ConversationStore(path, "default", owner="alice").list() == []
    with pytest.raises(ConversationError):
        ConversationStore(path, "default", owner="alice").delete("abc123abc123")
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(feedback)")}
    assert "owner" in columns


# --- 3. one upload path: the UI's limits in the HTTP API, a capped body, files removed with documents --
def test_api_uploads_get_the_uis_limits(fake_settings, tmp_path):
    qa = make_api_qa(fake_settings, [ANSWER], tmp_path)
    ui = qa.settings.ui.model_copy(update={"upload_max_files": 2, "uploads_max_total_mb": 0.001})  # ~1 kB
    qa = DocQA(qa.settings.model_copy(update={"ui": ui}))
    with live_server(create_app(qa)) as url:
        files = [("files", (f"n{i}.txt", f"Note {i}: penguins live in Antarctica.".encode())) for i in range(3)]
        files.append(("files", ("big.txt", b"Walruses. " * 200)))  # over the uploads folder's total
        data = httpx.post(f"{url}/v1/documents", files=files).json()["data"]
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in data}
    assert by_name["n0.txt"]["status"] == by_name["n1.txt"]["status"] == "added"
    assert "UPLOAD_MAX_FILES" in by_name["n2.txt"]["reason"]  # the count
    assert by_name["big.txt"]["status"] == "skipped"
    stored = sorted(p.name for p in qa.settings.uploads_dir.iterdir())
    assert stored == ["n0.txt", "n1.txt"]


def test_api_uploads_are_parsed_under_the_time_limit(fake_settings, tmp_path, monkeypatch):
    from rag.ingest import parsecheck

    qa = make_api_qa(fake_settings, [ANSWER], tmp_path)
    monkeypatch.setattr(parsecheck, "files_over_time_limit",
                        lambda paths, **kw: {p: "parsing took longer than 60 s" for p in paths if "slow" in p.name})
    with live_server(create_app(qa)) as url:
        data = httpx.post(f"{url}/v1/documents", files=[("files", ("slow.txt", b"Slow to parse.")),
                                                        ("files", ("fine.txt", b"Fine to parse."))]).json()["data"]
    assert {r["path"].rsplit("/", 1)[-1]: r["status"] for r in data} == {"fine.txt": "added", "slow.txt": "skipped"}
    assert sorted(p.name for p in qa.settings.uploads_dir.iterdir()) == ["fine.txt"]


def test_api_request_body_is_capped(fake_settings, tmp_path):
    qa = make_api_qa(fake_settings, [ANSWER], tmp_path, max_request_mb=0.01)  # ~10 kB
    with live_server(create_app(qa)) as url:
        r = httpx.post(f"{url}/v1/documents", files={"files": ("big.txt", b"x" * 20_000)})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"

        def chunked():  # no Content-Length: counted as it arrives
            for _ in range(40):
                yield b"y" * 1000

        r = httpx.post(f"{url}/v1/search", content=chunked(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert httpx.post(f"{url}/v1/search", json={"query": "companies"}).status_code == 200
    assert not qa.settings.uploads_dir.exists() or not any(qa.settings.uploads_dir.iterdir())


def test_deleting_through_the_api_removes_the_stored_upload(fake_settings, tmp_path):
    qa = make_api_qa(fake_settings, [ANSWER], tmp_path)
    with live_server(create_app(qa)) as url:
        r = httpx.post(f"{url}/v1/documents", files={"files": ("penguins.txt", b"Penguins live in Antarctica.")})
        source = r.json()["data"][0]["path"]
        assert (qa.settings.uploads_dir / "penguins.txt").is_file()
        assert httpx.delete(f"{url}/v1/documents/penguins.txt").json()["deleted"] is True
    assert not (qa.settings.uploads_dir / "penguins.txt").exists()
    assert source not in {s.source for s in qa.sources()}
