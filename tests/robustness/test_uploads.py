"""Uploads: count and disk limits, no race between users, a parse time limit, and files go with their documents."""

from __future__ import annotations

import threading
from pathlib import Path

import gradio as gr
import pytest

from rag.core.config import load_settings
from rag.ingest.loaders import SUPPORTED_SUFFIXES
from rag.ingest.parsecheck import files_over_time_limit
from rag.ingest.uploads import save_uploads, uploads_size
from rag.serve.api import DocQA
from tests.conftest import shared_cache
from ui.handlers import Handlers

REPLY = "Answer: six companies\nDetails: Six foreign-invested companies changed their business scope [1]."


def settings_for(tmp_path: Path, **ui):
    return load_settings(
        environ={}, home=tmp_path / "home", cache=shared_cache(),
        embedding={"provider": "fake", "model_name": "fake"},
        llm={"provider": "fake", "fake_responses": [REPLY]},
        answer={"min_relevance": -1.0}, ui=ui,
    )


def upload_files(tmp_path: Path, n: int, *, size: int = 100, name: str | None = None) -> list[Path]:
    out = []
    for i in range(n):
        d = tmp_path / "browser" / str(i)
        d.mkdir(parents=True, exist_ok=True)
        p = d / (name or f"doc{i}.txt")
        p.write_text(f"Document {i} says the fee is {i} euros. " + "x" * max(0, size - 40), encoding="utf-8")
        out.append(p)
    return out


def test_file_count_per_upload_is_limited(tmp_path):
    files = upload_files(tmp_path, 5)
    stored, rejected = save_uploads(files, tmp_path / "up", allowed=SUPPORTED_SUFFIXES, max_bytes=10**6, max_files=3)
    assert len(stored) == 3
    assert len(rejected) == 2 and all("RAG_UI__UPLOAD_MAX_FILES" in r.reason for r in rejected)


def test_total_disk_use_of_uploads_is_limited(tmp_path):
    dest = tmp_path / "up"
    files = upload_files(tmp_path, 6, size=1000)
    stored, rejected = save_uploads(files, dest, allowed=SUPPORTED_SUFFIXES, max_bytes=10**6, max_total_bytes=3500)
    assert len(stored) == 3 and len(rejected) == 3
    assert all("RAG_UI__UPLOADS_MAX_TOTAL_MB" in r.reason for r in rejected)
    assert uploads_size(dest) <= 3500
    # the same bytes again take no new space, so they are accepted even when the folder is full
    again, refused = save_uploads(files[:1], dest, allowed=SUPPORTED_SUFFIXES, max_bytes=10**6, max_total_bytes=3500)
    assert again == stored[:1] and not refused


@pytest.fixture
def slow_disk(monkeypatch):
    """Every copy takes 0.2 s before it starts: a slow disk widens any check-then-write window."""
    import shutil
    import time

    real = shutil.copyfile

    def slow(src, dst, *args, **kwargs):
        time.sleep(0.2)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", slow)


def test_two_users_uploading_the_same_name_at_once_do_not_race(tmp_path, slow_disk):
    dest = tmp_path / "up"
    n = 8
    files = upload_files(tmp_path, n, size=20_000, name="report.txt")  # same name, different bytes
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def user(i):
        barrier.wait()
        results[i] = save_uploads([files[i]], dest, allowed=SUPPORTED_SUFFIXES, max_bytes=10**7)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [r[0][0] for r in results]
    assert len(set(stored)) == n, stored  # every upload got its own file…
    for i, path in enumerate(stored):  # …holding exactly what that user sent
        assert path.read_bytes() == files[i].read_bytes()
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in stored)  # no temp copies left


def test_same_bytes_uploaded_at_once_are_stored_once(tmp_path, slow_disk):
    dest = tmp_path / "up"
    files = upload_files(tmp_path, 1, size=20_000, name="same.txt") * 6
    barrier = threading.Barrier(6)
    out = []

    def user(f):
        barrier.wait()
        out.append(save_uploads([f], dest, allowed=SUPPORTED_SUFFIXES, max_bytes=10**7)[0][0])

    threads = [threading.Thread(target=user, args=(f,)) for f in files]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(out)) == 1 and [p.name for p in dest.iterdir()] == ["same.txt"]


def test_deleting_a_document_removes_its_uploaded_file(tmp_path):
    h = Handlers(DocQA(settings_for(tmp_path)))
    files = upload_files(tmp_path, 2)
    h.upload([str(f) for f in files], "default")
    uploads = h.base.settings.uploads_dir
    assert sorted(p.name for p in uploads.iterdir()) == ["doc0.txt", "doc1.txt"]
    source = next(s.source for s in h.base.sources() if s.source.endswith("doc0.txt"))
    h.delete(source, "default")
    assert [p.name for p in uploads.iterdir()] == ["doc1.txt"]
    assert [Path(s.source).name for s in h.base.sources()] == ["doc1.txt"]


def test_a_file_another_collection_still_uses_is_kept(tmp_path):
    h = Handlers(DocQA(settings_for(tmp_path)))
    files = upload_files(tmp_path, 1)
    h.upload([str(f) for f in files], "default")
    h.upload([str(f) for f in files], "other")
    source = h.base.sources()[0].source
    h.delete(source, "default")
    assert [p.name for p in h.base.settings.uploads_dir.iterdir()] == ["doc0.txt"]
    h.delete(source, "other")
    assert list(h.base.settings.uploads_dir.iterdir()) == []


def test_upload_that_cannot_be_ingested_leaves_no_file(tmp_path):
    h = Handlers(DocQA(settings_for(tmp_path)))
    bad = tmp_path / "browser" / "empty.txt"
    bad.parent.mkdir(parents=True)
    bad.write_text("   ", encoding="utf-8")
    rows = h.upload([str(bad)], "default")[0]
    assert rows[0][1] == "skipped"
    assert list(h.base.settings.uploads_dir.iterdir()) == []


def slow_html(path: Path) -> Path:
    # deeply nested markup that takes the HTML extractor seconds, not milliseconds
    path.write_text("<html><body>" + "<div><p>word " * 40000 + "</p></div>" * 40000 + "</body></html>",
                    encoding="utf-8")
    return path


def test_parsing_over_the_time_limit_is_a_clear_skip(tmp_path):
    quick = tmp_path / "quick.txt"
    quick.write_text("The fee is 5 euros.", encoding="utf-8")
    slow = slow_html(tmp_path / "slow.html")
    result = files_over_time_limit([quick, slow, quick], timeout_s=0.2)
    assert list(result) == [slow]
    assert "RAG_UI__PARSE_TIMEOUT_S" in result[slow]


def test_upload_over_the_parse_time_limit_is_skipped_and_the_rest_ingested(tmp_path):
    h = Handlers(DocQA(settings_for(tmp_path, parse_timeout_s=0.2)))
    quick = upload_files(tmp_path, 1)[0]
    slow = slow_html(tmp_path / "slow.html")
    rows = h.upload([str(slow), str(quick)], "default")[0]
    status = {r[0]: (r[1], r[3]) for r in rows}
    assert status["doc0.txt"][0] == "added"
    assert status["slow.html"][0] == "skipped" and "longer than 0.2 s" in status["slow.html"][1]
    assert [p.name for p in h.base.settings.uploads_dir.iterdir()] == ["doc0.txt"]


def test_popups_escape_file_names_and_errors(tmp_path):
    h = Handlers(DocQA(settings_for(tmp_path)))
    with pytest.raises(gr.Error) as info:
        h.switch_collection("<img src=x onerror=alert(1)>")
    assert "<img" not in info.value.message and "&lt;img src=x onerror=alert(1)&gt;" in info.value.message
