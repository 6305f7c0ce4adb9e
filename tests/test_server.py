"""The HTTP API, driven live on loopback: the official `openai` client for chat, httpx for the rest."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import httpx
import openai
import pytest
import uvicorn

from rag.core.errors import ConfigError
from rag.serve.api import DocQA
from rag.serve.http import APIError, ChatMessage, check_bind, conversation, create_app

DOC = ("Six foreign-invested biotech companies completed changes to their business scope on Nov 14. "
       "The notice was issued in September by the Ministry of Commerce.\n\n"
       "The pilot covers eight cities, including Beijing, Shanghai and Hainan province.")
ANSWER = "Answer: six\nDetails: Six foreign-invested biotech companies changed their business scope on Nov 14 [1]."
TOKEN = "s3cret-token"


@contextmanager
def live_server(app):
    """`app` served by uvicorn on a free loopback port in a background thread; yields the base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def make_qa(fake_settings, responses, tmp_path, **api):
    settings = fake_settings.model_copy(update={
        "answer": fake_settings.answer.model_copy(update={"min_relevance": -1.0}),
        "llm": fake_settings.llm.model_copy(update={"fake_responses": responses}),
        "api": fake_settings.api.model_copy(update=api),
    })
    qa = DocQA(settings)
    docs = tmp_path / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "news.txt").write_text(DOC)
    qa.ingest([docs])
    return qa


@pytest.fixture
def api(fake_settings, tmp_path):
    """A live API (token required) over a collection holding news.txt; yields (base URL, qa)."""
    qa = make_qa(fake_settings, [ANSWER], tmp_path, tokens=[TOKEN])
    with live_server(create_app(qa)) as url:
        yield url, qa


def client(url, token=TOKEN):
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)


def test_chat_completion_with_citations(api):
    url, _ = api
    resp = client(url).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "How many companies changed their business scope?"}],
        temperature=0.3, user="someone")  # unknown/unused fields are ignored
    message = resp.choices[0].message
    assert "[1]" in message.content and "Six" in message.content
    extra = message.model_extra
    assert extra["abstained"] is False and "total_ms" in extra["timings"]
    [cite] = extra["citations"]
    assert set(cite) == {"n", "chunk_id", "source", "title", "page", "section", "quote", "url", "support",
                         "supported"}
    assert cite["n"] == 1 and cite["source"].endswith("news.txt") and cite["quote"].startswith("Six")


def test_streaming_sends_draft_then_verified_text_then_citations_once(api):
    url, _ = api
    chunks = list(client(url).chat.completions.create(
        model="default", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "How many companies changed their business scope?"}]))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    draft = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content", "") for c in chunks if c.choices)
    assert draft.startswith("Answer: six") and len([c for c in chunks if c.choices]) > 5  # tokens as written
    assert "[1]" in content and not content.startswith("Answer:")
    with_citations = [c for c in chunks if "citations" in (c.model_extra or {})]
    assert len(with_citations) == 1 and with_citations[0].choices[0].finish_reason == "stop"
    assert with_citations[0].model_extra["citations"][0]["source"].endswith("news.txt")
    assert with_citations[0].model_extra["abstained"] is False
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_follow_up_uses_the_conversation(fake_settings, tmp_path):
    """A follow-up ("And which cities does it cover?") reaches the model with the earlier turn: a model that can
    only answer when it is shown what "it" is answers; shown the bare question, it would say it does not know."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    earlier = "How many companies changed scope?"

    class Reader(GenericFakeChatModel):
        prompts: list = []

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            prompt = "\n".join(str(m.content) for m in messages)
            self.prompts.append(prompt)
            reply = ("Answer: eight cities\nDetails: The pilot covers eight cities, including Beijing [1]."
                     if earlier in prompt else "Answer: I don't know based on the documents.")
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])

    qa = make_qa(fake_settings, [ANSWER], tmp_path)
    qa.chat_model = reader = Reader(messages=iter([]))
    with live_server(create_app(qa)) as url:
        resp = client(url, "unused").chat.completions.create(model="default", messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": earlier},
            {"role": "assistant", "content": "Six companies changed scope [1]."},
            {"role": "user", "content": "And which cities does it cover?"},
        ])
        alone = client(url, "unused").chat.completions.create(model="default", messages=[
            {"role": "user", "content": "And which cities does it cover?"}])
    assert len(reader.prompts) == 2 and earlier in reader.prompts[0] and "Six companies" in reader.prompts[0]
    assert "eight cities" in resp.choices[0].message.content
    assert resp.choices[0].message.model_extra["citations"]
    assert alone.choices[0].message.model_extra["abstained"] is True  # the same question without its conversation


def test_abstention_is_reported(fake_settings, tmp_path):
    qa = make_qa(fake_settings, ["Answer: I don't know based on the documents."], tmp_path)
    with live_server(create_app(qa)) as url:
        resp = client(url, "x").chat.completions.create(
            model="default", messages=[{"role": "user", "content": "What is the GDP of France?"}])
    extra = resp.choices[0].message.model_extra
    assert extra["abstained"] is True and extra["citations"] == [] and extra["abstain_reason"]


def test_models_list_collections_and_unknown_model_is_404(api):
    url, _ = api
    c = client(url)
    assert [m.id for m in c.models.list()] == ["default"]
    with pytest.raises(openai.NotFoundError) as err:
        c.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert err.value.code == "model_not_found" and "GET /v1/models" in err.value.message


def test_missing_fields_give_openai_style_errors(api):
    url, _ = api
    h = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "default"}, headers=h)
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "Missing required parameter: 'messages'.", "type": "invalid_request_error",
                                 "param": "messages", "code": None}
    r = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "q"}]}, headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    r = httpx.post(f"{url}/v1/chat/completions", headers=h, json={
        "model": "default", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    assert r.status_code == 400 and "last message" in r.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError, match="messages"):
        client(url).chat.completions.create(model="default", messages=[])


def test_wrong_or_missing_token_is_refused(api):
    url, _ = api
    with pytest.raises(openai.AuthenticationError, match="Incorrect bearer token"):
        client(url, "wrong").chat.completions.create(model="default", messages=[{"role": "user", "content": "q"}])
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in (("GET", "/v1/models"), ("GET", "/v1/documents"), ("POST", "/v1/search")):
            r = httpx.request(method, url + path, headers=headers, json={"query": "x"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", (headers, path)
            assert r.headers["www-authenticate"] == "Bearer"


def test_without_tokens_other_hosts_and_web_origins_are_refused(fake_settings, tmp_path):
    qa = make_qa(fake_settings, [ANSWER], tmp_path)
    with live_server(create_app(qa)) as url:
        assert httpx.get(f"{url}/v1/models").status_code == 200
        assert httpx.get(f"{url}/v1/models", headers={"Origin": "http://localhost:3000"}).status_code == 200
        assert httpx.get(f"{url}/v1/models", headers={"Host": "evil.example"}).status_code == 403  # DNS rebinding
        r = httpx.post(f"{url}/v1/documents", headers={"Origin": "https://evil.example"},
                       files={"files": ("x.txt", b"planted text")})  # a cross-site form post
        assert r.status_code == 403 and not (qa.settings.uploads_dir / "x.txt").exists()


def test_search_returns_chunks_with_scores(api):
    url, _ = api
    h = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{url}/v1/search", headers=h, json={"query": "business scope", "k": 2, "extra": 1})
    assert r.status_code == 200
    hits = r.json()["data"]
    assert 1 <= len(hits) <= 2 and hits[0]["rank"] == 1 and hits[0]["source"].endswith("news.txt")
    assert {"chunk_id", "text", "score", "page", "start", "end", "title"} <= set(hits[0])
    r = httpx.post(f"{url}/v1/search", headers=h, json={"query": "x", "sources": ["missing.txt"]})
    assert r.status_code == 404 and "missing.txt" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/search", headers=h, json={"k": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "query"


def test_documents_upload_list_delete(api, fake_settings):
    url, qa = api
    h = {"Authorization": f"Bearer {TOKEN}"}
    too_big = b"x" * (int(qa.settings.ui.upload_max_mb * 2**20) + 1)
    r = httpx.post(f"{url}/v1/documents", headers=h, files=[
        ("files", ("../../notes.md", b"# Notes\n\nThe cafeteria serves lunch at noon.")),
        ("files", ("tool.exe", b"MZ...")),
        ("files", ("big.txt", too_big)),
    ])
    assert r.status_code == 200, r.text
    by_status = {d["status"]: d for d in r.json()["data"]}
    assert by_status["added"]["chunks"] >= 1 and by_status["added"]["path"].endswith("notes.md")
    skipped = [d for d in r.json()["data"] if d["status"] == "skipped"]
    assert any("not accepted" in d["reason"] for d in skipped) and any("upload limit" in d["reason"] for d in skipped)
    assert (qa.settings.uploads_dir / "notes.md").exists()  # the name is made safe, never a path outside

    listed = httpx.get(f"{url}/v1/documents", headers=h).json()["data"]
    assert sorted(d["source"].rsplit("/", 1)[-1] for d in listed) == ["news.txt", "notes.md"]

    r = httpx.delete(f"{url}/v1/documents/notes.md", headers=h)
    assert r.status_code == 200 and r.json()["chunks"] >= 1
    assert [d["source"].rsplit("/", 1)[-1] for d in httpx.get(f"{url}/v1/documents", headers=h).json()["data"]] \
        == ["news.txt"]
    r = httpx.delete(f"{url}/v1/documents/notes.md", headers=h)
    assert r.status_code == 404 and "rag sources" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/documents", headers=h, data={"a": "b"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "files"


def test_upload_creates_a_collection_that_chat_can_use(api):
    url, _ = api
    h = {"Authorization": f"Bearer {TOKEN}"}
    r = httpx.post(f"{url}/v1/documents", params={"collection": "notes"}, headers=h,
                   files={"files": ("notes.md", b"The cafeteria serves lunch at noon.")})
    assert r.status_code == 200 and r.json()["collection"] == "notes"
    assert [m.id for m in client(url).models.list()] == ["default", "notes"]
    hits = httpx.post(f"{url}/v1/search", headers=h, json={"query": "lunch", "collection": "notes"}).json()["data"]
    assert [d["source"].rsplit("/", 1)[-1] for d in hits] == ["notes.md"]


def test_empty_collection_is_a_clear_error(fake_settings, tmp_path):
    qa = DocQA(fake_settings)
    with live_server(create_app(qa)) as url:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as err:
                client(url, "x").chat.completions.create(model="default", stream=stream,
                                                         messages=[{"role": "user", "content": "q"}])
            assert err.value.status_code == 409 and "rag ingest" in err.value.message


def test_conversation_pairs_turns_and_ignores_system():
    msgs = [ChatMessage(role="system", content="be brief"), ChatMessage(role="user", content="q1"),
            ChatMessage(role="assistant", content="a1 [1]."),
            ChatMessage(role="user", content=[{"type": "text", "text": "q2"}])]
    assert conversation(msgs) == ("q2", [("q1", "a1 [1].")])
    with pytest.raises(APIError):
        conversation([ChatMessage(role="user", content="  ")])


def test_non_loopback_bind_needs_tokens_and_tls(fake_settings, tmp_path, caplog):
    with pytest.raises(ConfigError, match="RAG_API__TOKENS"):
        check_bind("0.0.0.0", fake_settings.api)
    check_bind("127.0.0.1", fake_settings.api)
    tokens = fake_settings.api.model_copy(update={"tokens": ["t"]})
    # tokens in clear over the network: refused unless TLS, or plain http explicitly allowed (with a warning)
    with pytest.raises(ConfigError, match="without TLS.*RAG_API__SSL_CERTFILE"):
        check_bind("0.0.0.0", tokens)
    with caplog.at_level("WARNING", logger="rag.serve.http"):
        check_bind("0.0.0.0", tokens.model_copy(update={"allow_plain_http": True}))
    assert "unencrypted" in caplog.text
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("x")
    key.write_text("x")
    check_bind("0.0.0.0", tokens.model_copy(update={"ssl_certfile": cert, "ssl_keyfile": key}))
    with pytest.raises(ConfigError, match="both RAG_API__SSL_CERTFILE and RAG_API__SSL_KEYFILE"):
        check_bind("0.0.0.0", tokens.model_copy(update={"ssl_certfile": cert}))
    with pytest.raises(ConfigError, match="not a readable file"):
        check_bind("0.0.0.0", tokens.model_copy(update={"ssl_certfile": cert, "ssl_keyfile": tmp_path / "nope.pem"}))


def test_ui_server_offers_the_api_beside_the_ui(fake_settings, tmp_path):
    pytest.importorskip("gradio")
    from ui.app import server_app

    qa = make_qa(fake_settings, [ANSWER], tmp_path)
    with live_server(server_app(qa)) as url:
        page = httpx.get(f"{url}/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        resp = client(url, "x").chat.completions.create(
            model="default", messages=[{"role": "user", "content": "How many companies changed their business scope?"}])
        assert resp.choices[0].message.model_extra["citations"]
        from gradio_client import Client  # the UI's own queue works under the mount

        result = Client(url + "/", verbose=False).predict("How many companies changed their business scope?",
                                                          api_name="/ask")
        assert result["citations"][0]["n"] == 1
        secret = qa.settings.uploads_dir / "secret.txt"  # stored uploads are still not served back
        secret.parent.mkdir(parents=True, exist_ok=True)
        secret.write_text("private")
        assert httpx.get(f"{url}/gradio_api/file={secret}").status_code in (403, 404)
    # bound beyond loopback with a UI password but no API token: the UI only
    from rag.core.config import UISettings
    from ui.access import load_guard

    with live_server(server_app(qa, host="0.0.0.0", guard=load_guard(UISettings(auth="u:p")))) as url:
        r = httpx.get(f"{url}/v1/models")
        assert r.status_code in (401, 404) and "data" not in r.text, r.text
        assert httpx.get(f"{url}/").status_code == 200


def test_a_slow_answer_does_not_block_other_requests(fake_settings, tmp_path):
    """Answers run on worker threads: while one is being written, the server still answers others."""
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    class SlowModel(GenericFakeChatModel):
        def _stream(self, *args, **kwargs):
            for chunk in super()._stream(*args, **kwargs):
                time.sleep(0.1)
                yield chunk

    qa = make_qa(fake_settings, [ANSWER], tmp_path)
    qa.chat_model = SlowModel(messages=iter([ANSWER]))
    with live_server(create_app(qa)) as url:
        done = {}

        def ask():
            done["answer"] = client(url, "x").chat.completions.create(
                model="default", messages=[{"role": "user", "content": "How many companies changed their business scope?"}])
            done["at"] = time.monotonic()

        worker = threading.Thread(target=ask)
        worker.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert httpx.get(f"{url}/v1/models").status_code == 200
        answered = time.monotonic()
        worker.join(30)
    assert done["answer"].choices[0].message.model_extra["citations"]
    assert answered - started < 1.0 and answered < done["at"]  # answered while the slow answer was still going


def test_stream_starts_before_a_slow_first_token_and_reports_late_errors(fake_settings, tmp_path):
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

    from rag.core.errors import LLMUnavailableError

    class SlowThenBroken(GenericFakeChatModel):
        def _stream(self, *args, **kwargs):
            time.sleep(2.5)  # a long prompt being read
            for i, chunk in enumerate(super()._stream(*args, **kwargs)):
                if i == 3:
                    raise LLMUnavailableError("the model server went away: restart it")
                yield chunk

    qa = make_qa(fake_settings, [ANSWER], tmp_path)
    qa.chat_model = SlowThenBroken(messages=iter([ANSWER]))
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": "How many companies?"}]}
    with live_server(create_app(qa)) as url:
        started = time.monotonic()
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
            lines = r.iter_lines()
            first = next(line for line in lines if line)
            assert r.status_code == 200 and '"role": "assistant"' in first
            assert time.monotonic() - started < 2.4  # the response began before the model's first token
            rest = [line for line in lines if line]
    assert '"reasoning_content"' in rest[0]
    assert '"message": "the model server went away: restart it"' in rest[-2] and rest[-1] == "data: [DONE]"
    with live_server(create_app(qa)) as url:
        qa.chat_model = SlowThenBroken(messages=iter([ANSWER]))
        with pytest.raises(openai.APIError, match="went away"):
            list(client(url, "x").chat.completions.create(**body))


def test_reader_tokens_ask_and_search_but_cannot_change_documents(fake_settings, tmp_path):
    qa = make_qa(fake_settings, [ANSWER], tmp_path, tokens=["editor-secret", "reader-secret:reader"])
    with live_server(create_app(qa)) as url:
        reader, editor = {"Authorization": "Bearer reader-secret"}, {"Authorization": "Bearer editor-secret"}
        resp = client(url, "reader-secret").chat.completions.create(
            model="default", messages=[{"role": "user", "content": "How many companies changed their business scope?"}])
        assert resp.choices[0].message.model_extra["citations"]
        assert httpx.post(f"{url}/v1/search", headers=reader, json={"query": "companies"}).status_code == 200
        assert httpx.get(f"{url}/v1/documents", headers=reader).status_code == 200
        refused = httpx.post(f"{url}/v1/documents", headers=reader,
                             files={"files": ("notes.md", b"The cafeteria serves lunch at noon.")})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_permissions"
        assert httpx.delete(f"{url}/v1/documents/news.txt", headers=reader).status_code == 403
        assert [s.source.rsplit("/", 1)[-1] for s in qa.sources()] == ["news.txt"]  # nothing changed
        # the role suffix is not part of the token
        assert httpx.get(f"{url}/v1/documents", headers={"Authorization": "Bearer reader-secret:reader"}).status_code == 401
        added = httpx.post(f"{url}/v1/documents", headers=editor,
                           files={"files": ("notes.md", b"The cafeteria serves lunch at noon.")})
        assert added.status_code == 200
        assert httpx.delete(f"{url}/v1/documents/notes.md", headers=editor).status_code == 200
