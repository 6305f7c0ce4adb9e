"""Scale-out by settings alone: the same ingest + search against a `chroma run` server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.core.errors import StoreUnavailableError
from rag.serve.api import DocQA


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chroma_server(tmp_path):
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        exe = Path(shutil.which("chroma") or "chroma")
    port = free_port()
    proc = subprocess.Popen([str(exe), "run", "--path", str(tmp_path / "server"), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma server did not start")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_ingest_and_search_against_chroma_server(fake_settings, chroma_server, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Zebras live in Kenya and are striped.")
    (docs / "b.txt").write_text("Penguins live in Antarctica and cannot fly.")
    settings = fake_settings.model_copy(update={"chroma_url": chroma_server})
    qa = DocQA(settings)
    assert qa.ingest([docs]).count("added") == 2
    assert qa.ingest([docs]).count("unchanged") == 2
    assert qa.retrieve("Where do penguins live?", k=1)[0].source.endswith("b.txt")
    # a second client (another machine, say) sees the same documents through the server
    other = DocQA(settings.model_copy(update={"home": tmp_path / "other-home"}))
    assert sorted(Path(s.source).name for s in other.sources()) == ["a.txt", "b.txt"]
    assert other.retrieve("striped zebras", k=1, mode="bm25")[0].source.endswith("a.txt")  # BM25 derived from the server
    assert not (settings.home / "chroma").exists()  # nothing stored locally by Chroma


def test_unreachable_server_is_a_clear_error(fake_settings):
    qa = DocQA(fake_settings.model_copy(update={"chroma_url": f"http://127.0.0.1:{free_port()}"}))
    with pytest.raises(StoreUnavailableError, match="chroma run"):
        qa.sources()
