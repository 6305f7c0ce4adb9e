"""The UI's callbacks, rendering and serving rules, with fake embeddings and a fake LLM.

Callbacks are called as plain Python functions (no browser); one test drives the
running app through `gradio_client`. The browser tests are in test_ui_browser.py.
"""

from __future__ import annotations

import itertools
import urllib.error
import urllib.request
from pathlib import Path

import gradio as gr
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.core.config import load_settings
from rag.core.errors import ConfigError
from rag.core.types import Answer, Chunk, Citation
from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.ingest.uploads import safe_filename, save_uploads
from rag.serve.api import DocQA
from rag.serve.http import is_loopback
from tests.conftest import serving, shared_cache
from ui.access import load_auth
from ui.app import serve
from ui.handlers import Handlers
from ui.layout import build_app
from ui.render import highlight, link_markers, render_citation, render_sources

XSS = "<script>alert(1)</script> <img src=x onerror=alert(1)>"
REPLY = "Answer: six companies\nDetails: Six foreign-invested companies changed their business scope [1]."
DOC = (
    "Business scope changes\n\n"
    "Six foreign-invested companies changed their business scope on 6 September.\n\n"
    f"The press release also said {XSS} in passing."
)


def make_settings(tmp_path: Path, responses: list[str], **overrides):
    return load_settings(
        environ={}, home=tmp_path / "home", cache=shared_cache(),
        embedding={"provider": "fake", "model_name": "fake"},
        llm={"provider": "fake", "fake_responses": responses},
        answer={"min_relevance": -1.0},  # fake embeddings are random: never abstain for lack of relevance
        **overrides,
    )


@pytest.fixture
def qa(tmp_path):
    return DocQA(make_settings(tmp_path, [REPLY]))


@pytest.fixture
def doc(tmp_path) -> Path:
    path = tmp_path / "scope.txt"
    path.write_text(DOC, encoding="utf-8")
    return path


def run_chat(h: Handlers, question: str, turns=None, *, k=5, sources=None, collection="default"):
    """All yields of one chat callback: [(textbox, conversation html, sources html, turns), ...]."""
    return list(h.chat(question, turns or [], k, sources or [], collection))


# --- app and chat ---------------------------------------------------------------------------
def test_build_app_has_the_api_endpoint(qa):
    demo = build_app(qa)
    assert isinstance(demo, gr.Blocks)
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"ask", "chat"} <= names


def test_chat_streams_partial_text_then_the_answer_with_citations(qa, doc):
    qa.ingest([doc])
    outs = run_chat(Handlers(qa), "How many companies changed their business scope?")
    assert outs[0][0] == ""  # the textbox is cleared at once
    streaming = [o[1] for o in outs if "rag-streaming" in o[1]]
    assert streaming and "Answer:" in streaming[0]  # raw tokens, before the answer is final
    final_html, sources_html, turns = outs[-1][1], outs[-1][2], outs[-1][3]
    assert "rag-streaming" not in final_html
    assert '<a class="cite-ref" href="#cite-1-1" data-cite="cite-1-1"' in final_html
    assert '<details class="rag-cite" id="cite-1-1"' in final_html
    assert "<mark>Six foreign-invested companies changed their business scope on 6 September.</mark>" in final_html
    assert "scope.txt" in final_html and "rag-timing" in final_html and "first token" in final_html
    assert "cited [1]" in sources_html and "rag-score" in sources_html
    assert isinstance(turns[-1].answer, Answer) and turns[-1].answer.citations


def test_follow_up_passes_the_conversation_and_shows_what_was_searched(tmp_path, doc):
    qa = DocQA(make_settings(tmp_path, [REPLY, REPLY]))
    qa.ingest([doc])
    h = Handlers(qa)
    turns = run_chat(h, "How many companies changed their business scope?")[-1][3]
    outs = run_chat(h, "and when?", turns)
    html, turns = outs[-1][1], outs[-1][3]
    assert len(turns) == 2 and turns[1].answer.history[0][0] == "How many companies changed their business scope?"
    assert "Searched for: <q>How many companies changed their business scope? and when?</q>" in html
    assert 'id="cite-2-1"' in html and 'id="cite-1-1"' in html  # both turns keep their own citations
    conversation, sources, cleared = h.new_conversation()
    assert cleared == [] and "Ask a question" in conversation


def test_abstention_says_so_and_shows_what_was_looked_at(tmp_path, doc):
    qa = DocQA(make_settings(tmp_path, ["Answer: I don't know based on the documents."]))
    qa.ingest([doc])
    html = run_chat(Handlers(qa), "What is the capital of Peru?")[-1][1]
    assert "rag-abstained" in html and "I don&#x27;t know based on the documents." in html
    assert "What I looked at" in html and "scope.txt" in html


def test_document_and_model_text_is_escaped(tmp_path, doc):
    qa = DocQA(make_settings(tmp_path, [f"Answer: six\nDetails: Six companies changed scope {XSS} [1]."]))
    qa.ingest([doc])
    outs = run_chat(Handlers(qa), f"Which companies? {XSS}")
    for _, html, side, _ in outs:
        for fragment in (html, side if isinstance(side, str) else ""):
            assert "<script" not in fragment and "<img" not in fragment
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in outs[-1][1]
    assert "&lt;img src=x onerror=alert(1)&gt;" in outs[-1][2]


def test_only_http_urls_become_links():
    c = Citation(n=1, chunk_id="x", source="/d/a.html", text="abc", quote="b", quote_start=1, quote_end=2,
                 url="javascript:alert(1)")
    html = render_citation(1, c)
    assert "href=\"javascript" not in html and "javascript:alert(1)" in html
    ok = render_citation(1, Citation(n=1, chunk_id="x", source="/d/a.html", url="https://example.org/a?b=1&c=2"))
    assert 'href="https://example.org/a?b=1&amp;c=2"' in ok


def test_quote_highlight_falls_back_when_offsets_are_off():
    c = Citation(n=1, chunk_id="x", source="s", text="one <b>two</b> three", quote="<b>two</b>",
                 quote_start=50, quote_end=60)
    assert highlight(c) == "one <mark>&lt;b&gt;two&lt;/b&gt;</mark> three"


def test_unknown_markers_stay_text():
    cites = [Citation(n=1, chunk_id="x", source="s")]
    html = link_markers("A [1][2] and [1, 3] <i>", 4, cites)
    assert html.count("cite-ref") == 1 and "[2]" in html and "[1, 3]" in html and "&lt;i&gt;" in html


def test_sources_panel_lists_passages_with_scores():
    a = Answer(text="x [1]", passages=[Chunk("c1", "first passage", "/d/a.txt", score=0.91234),
                                       Chunk("c2", "second", "/d/b.txt", page=3, score=0.5)],
               citations=[Citation(n=1, chunk_id="c1", source="/d/a.txt")])
    html = render_sources(a)
    assert "0.912" in html and "0.500" in html and "b.txt</span> · p. 3" in html and html.count("cited [1]") == 1


# --- errors ----------------------------------------------------------------------------------
def test_empty_index_error_is_shown_in_the_chat(qa):
    with pytest.warns(UserWarning, match="no documents indexed yet"):  # gr.Warning outside a request
        outs = run_chat(Handlers(qa), "Anything?")
    turns = outs[-1][3]
    assert "no documents indexed yet" in turns[-1].error
    assert 'role="alert"' in outs[-1][1] and "upload files in the UI" in outs[-1][1]


def test_empty_question_is_not_sent(qa):
    with pytest.warns(UserWarning, match="Type a question first"):
        outs = run_chat(Handlers(qa), "   ")
    assert len(outs) == 1 and outs[0][3] == []


class _BrokenModel(GenericFakeChatModel):
    """A chat model whose backend fails mid-way, like a crashed server."""

    def _stream(self, *args, **kwargs):
        raise RuntimeError("backend crashed")


def test_unexpected_errors_surface_as_gr_error(tmp_path, doc):
    qa = DocQA(make_settings(tmp_path, [REPLY]), chat_model=_BrokenModel(messages=iter([])))
    qa.ingest([doc])
    gen = Handlers(qa).chat("How many?", [], 5, [], "default")
    seen = []
    with pytest.raises(gr.Error, match="backend crashed"):
        for out in gen:
            seen.append(out)
    assert "backend crashed" in seen[-1][1]  # also left in the conversation


# --- documents -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, expected", [
    ("../../x.txt", "x.txt"),
    ("a/b/c.md", "c.md"),
    ("..\\..\\win.TXT", "win.txt"),
    ("we!rd name$ (v2).txt", "we_rd name_ _v2_.txt"),
    ("<script>.md", "_script_.md"),
    ("a..b.md", "a.b.md"),
    ("..", "upload"),
    (".hidden.md", "hidden.md"),
    ("....txt", "upload.txt"),
    ("noext", "noext"),
])
def test_safe_filename(name, expected):
    got = safe_filename(name)
    assert got == expected
    assert "/" not in got and "\\" not in got and ".." not in got and not got.startswith(".")


_uploads = itertools.count()


def _upload(tmp_path: Path, name: str, data: bytes) -> Path:
    """A file as the browser upload leaves it: a temp folder holding the user's file name."""
    folder = tmp_path / "gradio-tmp" / str(next(_uploads))
    folder.mkdir(parents=True)
    path = folder / Path(name).name
    path.write_bytes(data)
    return path


def test_save_uploads_checks_type_and_size_and_avoids_collisions(tmp_path):
    dest = tmp_path / "uploads"
    files = [
        _upload(tmp_path, "notes.md", b"# one"),
        _upload(tmp_path, "notes.md", b"# two, different"),   # same name, other content: suffixed
        _upload(tmp_path, "notes.md", b"# one"),              # same bytes again: reused
        _upload(tmp_path, "we!rd name.txt", b"text"),
        _upload(tmp_path, "tool.exe", b"MZ"),
        _upload(tmp_path, "big.txt", b"x" * 2048),
    ]
    stored, rejected = save_uploads(files, dest, allowed=SUPPORTED_SUFFIXES, max_bytes=1024)
    assert [p.name for p in stored] == ["notes.md", "notes-1.md", "we_rd name.txt"]
    assert all(p.parent == dest for p in stored)
    assert (dest / "notes-1.md").read_bytes() == b"# two, different"
    reasons = {r.path: r.reason for r in rejected}
    assert "file type .exe is not accepted" in reasons["tool.exe"]
    assert "over the upload limit" in reasons["big.txt"]
    assert {r.status for r in rejected} == {"skipped"}


def test_upload_ingests_and_lists_documents(qa, tmp_path):
    h = Handlers(qa)
    files = [str(_upload(tmp_path, "../scope.txt", DOC.encode())), str(_upload(tmp_path, "virus.exe", b"MZ"))]
    results, table, only, to_delete, cleared = h.upload(files, "default")
    rows = {r[0]: r for r in results}
    assert rows["scope.txt"][1] == "added" and rows["scope.txt"][2] >= 1
    assert rows["virus.exe"][1] == "skipped" and "not accepted" in rows["virus.exe"][3]
    assert table["value"][0][0] == "scope.txt" and cleared is None
    source = table["value"][0][-1]
    assert Path(source).parent == qa.settings.uploads_dir.resolve()
    assert only["choices"] == [("scope.txt", source)]
    again = h.upload([str(_upload(tmp_path, "scope.txt", DOC.encode()))], "default")[0]
    assert again == [["scope.txt", "unchanged", 0, ""]]
    # restricting a question to the uploaded document
    outs = run_chat(h, "How many companies changed their business scope?", sources=[source])
    assert outs[-1][3][-1].answer.citations[0].source == source


def test_upload_deletes_gradios_temp_copy(qa, tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    temp = _upload(tmp_path, "scope.txt", DOC.encode())
    Handlers(qa).upload([str(temp)], "default")
    assert not temp.exists() and (qa.settings.uploads_dir / "scope.txt").exists()


def test_delete_removes_a_document(qa, doc):
    qa.ingest([doc])
    h = Handlers(qa)
    table = h.delete(qa.sources()[0].source, "default")[0]
    assert table["value"] is None and qa.sources() == []


def test_switching_collection_opens_another_index(qa, doc):
    qa.ingest([doc])
    h = Handlers(qa)
    dropdown, table, *_rest, turns = h.switch_collection("papers")
    assert dropdown["value"] == "papers" and "papers" in dropdown["choices"] and "default" in dropdown["choices"]
    assert table["value"] is None and turns == []
    assert h.qa_for("papers").settings.collection == "papers"
    assert h.qa_for("papers").embeddings is qa.embeddings  # models are shared, not loaded again
    with pytest.raises(gr.Error, match="invalid collection name"):
        h.switch_collection("no/slashes")


# --- serving ---------------------------------------------------------------------------------
def test_non_loopback_host_requires_auth(tmp_path):
    settings = make_settings(tmp_path, [REPLY])
    with pytest.raises(ConfigError, match="RAG_UI__AUTH=user:password or RAG_UI__AUTH_FILE"):
        serve(settings, host="0.0.0.0", port=1)


def test_auth_from_setting_and_file(tmp_path):
    auth_file = tmp_path / "users"
    auth_file.write_text("# who may sign in\nalice:s3cret:with:colons\n\nbob:pw\n")
    settings = make_settings(tmp_path, [REPLY], ui={"auth": "admin:pw", "auth_file": auth_file})
    assert load_auth(settings.ui) == [("admin", "pw"), ("alice", "s3cret:with:colons"), ("bob", "pw")]
    with pytest.raises(ConfigError, match="expected `user:password`"):
        load_auth(make_settings(tmp_path, [REPLY], ui={"auth": "nopassword"}).ui)
    with pytest.raises(ConfigError, match="RAG_UI__AUTH_FILE"):
        load_auth(make_settings(tmp_path, [REPLY], ui={"auth_file": tmp_path / "missing"}).ui)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("192.168.1.5", False), ("example.org", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_gradio_client_can_ask(qa, doc):
    from gradio_client import Client

    qa.ingest([doc])
    with serving(qa) as url:
        client = Client(url, verbose=False)
        result = client.predict("How many companies changed their business scope?", api_name="/ask")
        assert result["answer"].endswith("[1].") and result["citations"][0]["n"] == 1
        assert result["history"][0][0] == "How many companies changed their business scope?"
        with pytest.raises(Exception, match="no documents indexed yet in collection 'papers'"):
            client.predict("Anything?", collection="papers", api_name="/ask")
        # stored uploads are not served back
        secret = qa.settings.uploads_dir / "secret.txt"
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("private")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{url}gradio_api/file={secret}")
        assert err.value.code in (403, 404)

