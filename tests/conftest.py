"""Shared fixtures: every test gets its own data dir, no API keys, and no network.

Integration tests share one provisioned model cache (the user's default cache,
filled by `make test`'s `rag provision`), so the 1.1 GB GGUF is assembled once.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from contextlib import contextmanager
from pathlib import Path

import pytest

from rag.core.config import default_home, load_settings

REPO = Path(__file__).resolve().parent.parent
SEED_DIR = REPO / "corpus"


def _loopback(address) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any connection beyond loopback fails the test: nothing may reach the network."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: guarded(self, a) or 0)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    """Point every path at a temp dir and remove keys and RAG_* settings of the person running the tests."""
    for key in list(os.environ):
        if key.startswith("RAG_") or key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RAG_CACHE", str(shared_cache()))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")


def shared_cache() -> Path:
    """Provisioned models live here across test sessions (same place `rag provision` fills)."""
    return default_home() / "cache"


@pytest.fixture
def fake_settings(tmp_path):
    """Settings with fake embeddings and a fake LLM, under a temp home."""
    return load_settings(
        environ={},
        home=tmp_path / "home",
        cache=shared_cache(),
        embedding={"provider": "fake", "model_name": "fake"},
        llm={"provider": "fake"},
        # canned replies answer questions, not the verification prompt (tests/test_verify.py covers it); a
        # canned reply has no confidence worth calibrating: no confidence gate (tests/test_confidence.py covers it)
        answer={"verify": False, "min_confidence": 0.0},
    )


@pytest.fixture
def real_settings(tmp_path):
    """Settings with the real embedding model (and the real local LLM where used)."""
    return load_settings(environ={}, home=tmp_path / "home", cache=shared_cache())


@contextmanager
def serving(qa):
    """The UI app for `qa` on a free loopback port, in a background thread; yields its URL."""
    from ui.layout import build_app

    demo = build_app(qa)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, ssr_mode=False, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


FAKE_ENV = {"RAG_EMBEDDING__PROVIDER": "fake", "RAG_EMBEDDING__MODEL_NAME": "fake", "RAG_LLM__PROVIDER": "fake"}


@pytest.fixture
def fake_env(monkeypatch):
    """The environment of a `rag` command on fake embeddings and a fake LLM (CLI tests)."""
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    return monkeypatch
