"""`RAG_CHROMA_TOKEN` is sent as Chroma's token auth header on every request to a Chroma server.

Chroma 1.x's `chroma run` (the Rust server) does not check tokens itself (its
auth hook is a no-op: chroma-core/chroma#3750, #4965), so a server holding
documents on a network must sit behind a proxy that does. The test stands up
exactly that on loopback: a small token-checking reverse proxy in front of a
real `chroma run`, and checks that with the token everything works, and that
without it (or with a wrong one) nothing gets through and the error says what to set.
"""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import SecretStr

from rag.core.config import load_settings
from rag.core.errors import StoreUnavailableError
from rag.serve.api import DocQA
from tests.test_chroma_server import chroma_server, free_port  # noqa: F401 -- fixture

TOKEN = "s3cret-token"


class TokenProxy(BaseHTTPRequestHandler):
    """Forwards to the Chroma server only requests carrying `Authorization: Bearer <TOKEN>`."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)
    seen: list = []

    def _handle(self):
        auth = self.headers.get("Authorization", "")
        type(self).seen.append((self.command, self.path, auth))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if auth != f"Bearer {TOKEN}":
            self.send_response(401)
            payload = b'{"error":"Unauthorized","message":"missing or wrong token"}'
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "authorization")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy(chroma_server):  # noqa: F811
    host, port = chroma_server.removeprefix("http://").split(":")
    handler = type("Proxy", (TokenProxy,), {"upstream": (host, int(port)), "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_token_from_the_environment_is_a_secret_setting():
    settings = load_settings(environ={"RAG_CHROMA_TOKEN": TOKEN, "RAG_HOME": "/tmp/x"})
    assert isinstance(settings.chroma_token, SecretStr)
    assert settings.chroma_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)


def test_token_is_sent_on_every_request_and_the_server_works(fake_settings, proxy, tmp_path):
    url, handler = proxy
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Zebras live in Kenya and are striped.")
    (docs / "b.txt").write_text("Penguins live in Antarctica and cannot fly.")
    qa = DocQA(fake_settings.model_copy(update={"chroma_url": url, "chroma_token": SecretStr(TOKEN)}))
    assert qa.ingest([docs]).count("added") == 2
    assert qa.retrieve("Where do penguins live?", k=1)[0].source.endswith("b.txt")
    assert handler.seen and all(auth == f"Bearer {TOKEN}" for _, _, auth in handler.seen)


@pytest.mark.parametrize("token", [None, "wrong"])
def test_without_the_right_token_nothing_gets_through(fake_settings, proxy, tmp_path, token):
    url, handler = proxy
    settings = fake_settings.model_copy(update={"chroma_url": url,
                                                "chroma_token": SecretStr(token) if token else None})
    with pytest.raises(StoreUnavailableError, match="RAG_CHROMA_TOKEN"):
        DocQA(settings).sources()
    assert handler.seen and all(auth != f"Bearer {TOKEN}" for _, _, auth in handler.seen)
