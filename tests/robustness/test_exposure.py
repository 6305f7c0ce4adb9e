"""Exposure of the served UI: roles, a login rate limit, TLS, and Gradio's file routes.

Each test serves the real app (fake models) on a loopback port and talks to it
over HTTP(S) or through `gradio_client`, as a remote user would.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.core.config import load_settings
from rag.core.errors import ConfigError
from rag.serve.api import DocQA
from tests.conftest import shared_cache
from ui.access import LoginGuard, load_auth, parse_users
from ui.app import launch_options
from ui.layout import build_app

REPLY = "Answer: six companies\nDetails: Six foreign-invested companies changed their business scope [1]."
DOC = "Business scope changes\n\nSix foreign-invested companies changed their business scope on 6 September."
AUTH = "alice:editor-pw\nbob:reader-pw:reader"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_qa(tmp_path: Path, **ui) -> DocQA:
    auth_file = tmp_path / "users.txt"
    auth_file.write_text(AUTH, encoding="utf-8")
    settings = load_settings(
        environ={}, home=tmp_path / "home", cache=shared_cache(),
        embedding={"provider": "fake", "model_name": "fake"},
        llm={"provider": "fake", "fake_responses": [REPLY] * 20},
        answer={"min_relevance": -1.0},
        ui={"auth_file": str(auth_file), **ui},
    )
    qa = DocQA(settings)
    doc = tmp_path / "scope.txt"
    doc.write_text(DOC, encoding="utf-8")
    qa.ingest([doc])
    return qa


@contextmanager
def served(qa: DocQA):
    """The app with the options `rag ui` would use (login, roles, TLS), on a free loopback port."""
    options = launch_options(qa.settings, "127.0.0.1", free_port())
    demo = build_app(qa, options["auth"])
    demo.launch(prevent_thread_lock=True, quiet=True, **options)
    scheme = "https" if options.get("ssl_certfile") else "http"
    try:
        yield f"{scheme}://127.0.0.1:{options['server_port']}/"
    finally:
        demo.close()


def login(url: str, user: str, password: str) -> int:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    body = urllib.parse.urlencode({"username": user, "password": password})
    conn.request("POST", "/login", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    status = conn.getresponse().status
    conn.close()
    return status


# --- roles ------------------------------------------------------------------------------------
def test_roles_are_read_from_auth_lines():
    users = parse_users(["alice:pw", "bob:pw:reader", "carol:a:b:c:editor", "dave:pass:with:colons"])
    assert {u.name: u.role for u in users.values()} == {"alice": "editor", "bob": "reader", "carol": "editor",
                                                        "dave": "editor"}
    assert users["carol"].password == "a:b:c" and users["dave"].password == "pass:with:colons"
    with pytest.raises(ConfigError, match="user:password"):
        parse_users(["nopassword"])


def test_reader_can_ask_but_not_delete_upload_or_create(tmp_path):
    from gradio_client import Client, handle_file

    qa = make_qa(tmp_path)
    before = [s.source for s in qa.sources()]
    new_doc = tmp_path / "new.txt"
    new_doc.write_text("Penguins live in Antarctica.", encoding="utf-8")
    with served(qa) as url:
        reader = Client(url, auth=("bob", "reader-pw"), verbose=False)
        assert reader.predict("How many companies changed their business scope?", api_name="/ask")["citations"]
        with pytest.raises(Exception, match="editor role"):
            reader.predict(before[0], "default", api_name="/delete")
        with pytest.raises(Exception, match="editor role"):
            reader.predict([handle_file(str(new_doc))], "default", api_name="/upload")
        with pytest.raises(Exception, match="editor role"):
            reader.predict("Anything?", collection="readers-own", api_name="/ask")
        assert [s.source for s in qa.sources()] == before  # nothing lost
        assert "readers-own" not in qa.collections()  # nothing created
        assert not qa.settings.uploads_dir.exists() or not any(qa.settings.uploads_dir.iterdir())

        editor = Client(url, auth=("alice", "editor-pw"), verbose=False)
        editor.predict([handle_file(str(new_doc))], "default", api_name="/upload")
        assert sorted(Path(s.source).name for s in qa.sources()) == ["new.txt", "scope.txt"]
        editor.predict(before[0], "default", api_name="/delete")
        assert [Path(s.source).name for s in qa.sources()] == ["new.txt"]


def test_readers_see_the_document_controls_disabled(tmp_path):
    import gradio as gr

    from ui.access import load_guard
    from ui.handlers import Handlers

    qa = make_qa(tmp_path)
    h = Handlers(qa, load_guard(qa.settings.ui))
    assert [u["interactive"] for u in h.controls(gr.Request(username="bob"))] == [False] * 6
    assert [u["interactive"] for u in h.controls(gr.Request(username="alice"))] == [True] * 6
    assert [u["interactive"] for u in Handlers(qa).controls(None)] == [True] * 6  # no login: loopback use


# --- login rate limit ------------------------------------------------------------------------
def test_failed_logins_lock_the_user_out_for_a_while(tmp_path):
    qa = make_qa(tmp_path, login_max_failures=3, login_lockout_s=3)
    with served(qa) as url:
        assert login(url, "alice", "editor-pw") == 200
        assert [login(url, "alice", f"guess{i}") for i in range(3)] == [400, 400, 400]
        assert login(url, "alice", "editor-pw") == 400  # the right password, refused while locked out
        assert login(url, "bob", "reader-pw") == 200  # another user is not affected
        time.sleep(3.2)
        assert login(url, "alice", "editor-pw") == 200


def test_failed_logins_from_one_address_lock_that_address_out(tmp_path):
    qa = make_qa(tmp_path, login_max_failures=3, login_lockout_s=3)
    with served(qa) as url:
        # six names, one wrong guess each: no name reaches its own limit, the address does (2 x 3)
        assert [login(url, f"user{i}", "guess") for i in range(6)] == [400] * 6
        assert login(url, "alice", "editor-pw") == 429
        time.sleep(3.2)
        assert login(url, "alice", "editor-pw") == 200


def test_guessing_across_many_names_is_slowed_too():
    now = [0.0]
    guard = LoginGuard(parse_users(["alice:pw"]), max_failures=2, lockout_s=60, clock=lambda: now[0])
    for i in range(20):
        guard(f"user{i}", "x")
    assert guard("alice", "pw") is False
    now[0] = 61
    assert guard("alice", "pw") is True


def test_load_auth_still_returns_pairs_without_roles(tmp_path):
    settings = load_settings(environ={}, home=tmp_path, ui={"auth": "bob:pw:reader"})
    assert load_auth(settings.ui) == [("bob", "pw")]


# --- TLS -------------------------------------------------------------------------------------
@pytest.fixture
def certificate(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return cert, key


def test_ui_is_served_over_https_with_the_configured_certificate(tmp_path, certificate):
    cert, key = certificate
    qa = make_qa(tmp_path, ssl_certfile=str(cert), ssl_keyfile=str(key))
    with served(qa) as url:
        assert url.startswith("https://")
        port = urllib.parse.urlsplit(url).port
        context = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200 and b"<html" in resp.read().lower()
        assert conn.sock.getpeercert()["subject"][0][0] == ("commonName", "127.0.0.1")
        conn.close()
        # plain http on the same port gets no page
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            plain.request("GET", "/")
            assert plain.getresponse().status != 200
        plain.close()


def test_tls_settings_are_checked(tmp_path, certificate):
    cert, _ = certificate
    half = load_settings(environ={}, home=tmp_path, ui={"ssl_certfile": str(cert)})
    with pytest.raises(ConfigError, match="RAG_UI__SSL_KEYFILE"):
        launch_options(half)
    missing = load_settings(environ={}, home=tmp_path, ui={"ssl_certfile": str(cert), "ssl_keyfile": "/nope.pem"})
    with pytest.raises(ConfigError, match="RAG_UI__SSL_KEYFILE=/nope.pem"):
        launch_options(missing)
    env = load_settings(environ={"RAG_UI__SSL_CERTFILE": str(cert), "RAG_UI__SSL_KEYFILE": str(cert),
                                 "RAG_HOME": str(tmp_path)})
    assert launch_options(env)["ssl_certfile"] == str(cert)


def test_off_loopback_still_needs_a_login(tmp_path):
    with pytest.raises(ConfigError, match="needs a login"):
        launch_options(load_settings(environ={}, home=tmp_path), host="0.0.0.0")
    assert launch_options(load_settings(environ={}, home=tmp_path))["server_name"] == "127.0.0.1"


# --- Gradio's file routes ----------------------------------------------------------------------
def test_file_routes_serve_nothing_outside_the_upload_area(tmp_path):
    from gradio.utils import get_upload_folder

    qa = make_qa(tmp_path)
    qa.settings = qa.settings.model_copy(update={"ui": qa.settings.ui.model_copy(update={"auth_file": None})})
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER", encoding="utf-8")
    uploads = qa.settings.uploads_dir
    uploads.mkdir(parents=True, exist_ok=True)
    (uploads / "stored.txt").write_text("STORED-UPLOAD-MARKER", encoding="utf-8")
    (uploads / "link.txt").symlink_to(secret)
    cache = Path(get_upload_folder())
    cache.mkdir(parents=True, exist_ok=True)
    planted = cache / f"planted-{time.time_ns()}"
    planted.symlink_to(secret)  # a symlink inside Gradio's own cache pointing out of it
    chroma = qa.settings.home / "chroma" / "chroma.sqlite3"
    targets = ["/etc/passwd", str(secret), str(uploads / "stored.txt"), str(uploads / "link.txt"), str(chroma),
               "/proc/self/environ"]
    paths = []
    for t in targets:
        rel = "../" * 12 + t.lstrip("/")
        paths += [f"/file={t}", f"/gradio_api/file={t}", f"/file={rel}", f"/gradio_api/file={rel}",
                  f"/gradio_api/file={urllib.parse.quote(t, safe='')}", f"/gradio_api/file={urllib.parse.quote(rel)}",
                  f"/gradio_api/file={rel.replace('/', '%2f')}", f"/gradio_api/file={rel.replace('/', '%252f')}",
                  f"/gradio_api/file=/{t}", f"/gradio_api/file={t.replace('/', chr(92))}",
                  f"/gradio_api/file={cache}/{'../' * 12}{t.lstrip('/')}",
                  f"/static/{rel}", f"/assets/{rel}", f"/gradio_api/static/{rel}", f"/gradio_api/{rel}",
                  f"/gradio_api/file={cache}/..%2f..%2f..%2f..%2f..%2f..%2f{t.lstrip('/')}"]
    paths += [f"/gradio_api/file={planted}", f"/file={planted}"]
    markers = [b"root:x:0:0", b"TOP-SECRET-MARKER", b"STORED-UPLOAD-MARKER", b"SQLite format", b"RAG_HOME="]
    leaks = []
    with served(qa) as url:
        port = urllib.parse.urlsplit(url).port
        for path in paths:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.putrequest("GET", path, skip_accept_encoding=True)  # sent as written, no normalising
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200 and any(m in body for m in markers):
                leaks.append((path, resp.status, body[:60]))
        # control: the route is live, and serves what Gradio itself put in its cache
        public = cache / f"public-{time.time_ns()}.txt"
        public.write_text("PUBLIC-MARKER", encoding="utf-8")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", f"/gradio_api/file={public}")
        control = conn.getresponse()
        control_body = control.read()
        conn.close()
        public.unlink()
    planted.unlink()
    print(f"\n{len(paths)} traversal paths tried, none served a file outside the upload area; "
          f"control file in Gradio's cache: HTTP {control.status}")
    assert not leaks, f"served outside the upload area: {leaks}"
    assert control.status == 200 and control_body == b"PUBLIC-MARKER"
    assert len(paths) > 90
